-- fold.lua, part 7 of 7: applying exposures and events, the batch loop and the counters.

-- The user's events that arrived before this exposure, within the lateness bound of it, count for this experiment
-- where they fall in the metric's window. Entries written before arrival times were kept ("name|value|ts") use
-- their event time as arrival. Only a first exposure replays, so the scope's list is dropped once read.
local function replay_pending(experiment, user, user_record, variant, exposed_at, exposure_arrived)
  local pending = pending_key(experiment, user)
  local entries = redis.call('LRANGE', pending, 0, -1)
  if #entries > 0 then redis.call('DEL', pending) end
  for _, entry in ipairs(redis.call('LRANGE', legacy_pending_key(user), 0, -1)) do
    entries[#entries + 1] = entry
  end
  local earliest_arrival = exposure_arrived - lateness_ms
  for _, entry in ipairs(entries) do
    local name, value, ts, arrived = string.match(entry, '^([^|]+)|([^|]*)|([^|]+)|?([^|]*)$')
    local happened_at = tonumber(ts or '')
    if name and happened_at and (tonumber(arrived) or happened_at) >= earliest_arrival then
      for _, target in ipairs(metrics_fed_by(name)) do
        if target.experiment == experiment and attributed(target, exposed_at, happened_at) then
          local values = record_values(user_record)
          fold(target, user_record, variant, event_value(value), values[target.own], values[target.other])
        end
      end
    end
  end
end

local function apply_exposure(user, place, experiment, variant, ts, exposed_at, arrived_at, attributes_json)
  local variants = variants_of(experiment)
  local ended_at = ended_at_of(experiment)
  if not variants or not variants[variant] or (ended_at and exposed_at >= ended_at) then
    orphans = orphans + 1 -- no such experiment or variant, or an exposure after the experiment ended
    return
  end
  local user_record = user_record_of(experiment, user, place)
  if exposure_of(user_record) then
    return -- the first exposure wins
  end
  set_exposure(user_record, variant, ts, exposed_at)
  add_sum(variant_key(experiment, variant), 'users', 1)
  enter_segments(experiment, user_record, variant, attributes_json)
  enter_covariates(experiment, user, user_record, variant, exposed_at)
  replay_pending(experiment, user, user_record, variant, exposed_at, arrived_at)
end

-- An event counts at once for the experiments that already saw the user's exposure; it waits in the pending list
-- of each experiment it feeds that has not yet (only a first exposure replays a list).
local function apply_track_event(user, place, name, value, ts, happened_at, arrived, arrived_at)
  local targets = metrics_fed_by(name)
  local amount = event_value(value)
  if targets.daily then record_daily_total(user, name, amount, happened_at, arrived_at) end
  local waiting = nil -- the stats scopes that wait for the user's exposure, in the order first met
  for _, target in ipairs(targets) do
    local user_record = user_record_of(target.experiment, user, place)
    local variant, exposed_at = exposure_of(user_record)
    if not (variant and exposed_at) then
      waiting = waiting or {}
      if not waiting[target.experiment] then
        waiting[target.experiment] = true
        waiting[#waiting + 1] = target.experiment
      end
    elseif attributed(target, exposed_at, happened_at) then
      local values = record_values(user_record)
      fold(target, user_record, variant, amount, values[target.own], values[target.other])
    end
  end
  if waiting then
    local entry = name .. '|' .. value .. '|' .. ts .. '|' .. arrived
    for _, experiment in ipairs(waiting) do
      local pending = pending_key(experiment, user)
      redis.call('LPUSH', pending, entry)
      redis.call('LTRIM', pending, 0, pending_max - 1)
      redis.call('EXPIRE', pending, pending_ttl)
    end
  end
end

for i = FIRST_EVENT, #ARGV, FIELDS_PER_EVENT do
  local kind, mark, user, place = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local a, b, ts, arrived, attributes = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local arrived_at = tonumber(arrived)
  if not first_delivery(user, mark, arrived_at) then
    duplicates = duplicates + 1
  else
    applied = applied + 1
    if kind == 'exposure' then
      apply_exposure(user, place, a, b, ts, tonumber(ts), arrived_at, attributes)
    else
      apply_track_event(user, place, a, b, ts, tonumber(ts), arrived, arrived_at)
    end
  end
end

flush()
keep_user_states()
redis.call('INCRBY', stats_key('applied'), applied)
redis.call('INCRBY', stats_key('duplicates'), duplicates)
redis.call('INCRBY', stats_key('orphan_exposures'), orphans)
redis.call('INCRBY', stats_key('overflow'), overflow)
redis.call('INCRBY', stats_key('poison'), poison)

return {applied, duplicates, orphans, overflow}
