-- fold.lua, part 7 of 7: applying exposures and events, the batch loop and the counters.

-- The user's events that arrived before this exposure, within the lateness bound of it, count for this experiment
-- where they fall in the metric's window. Entries written before arrival times were kept ("name|value|ts") use
-- their event time as arrival.
local function replay_pending(experiment, user, user_record, variant, exposed_at, exposure_arrived)
  local earliest_arrival = exposure_arrived - lateness_ms
  for _, entry in ipairs(redis.call('LRANGE', pending_key(user), 0, -1)) do
    local name, value, ts, arrived = string.match(entry, '^([^|]+)|([^|]*)|([^|]+)|?([^|]*)$')
    local happened_at = tonumber(ts or '')
    if name and happened_at and (tonumber(arrived) or happened_at) >= earliest_arrival then
      for _, target in ipairs(metrics_fed_by(name)) do
        if target.experiment == experiment and attributed(experiment, target.metric, exposed_at, happened_at) then
          local stored = read_fields(user_record, {user_fields(target.metric, target.role)})
          fold(experiment, user_record, variant, target.metric, target.role, value, stored[1], stored[2])
        end
      end
    end
  end
end

local function apply_exposure(user, experiment, variant, ts, arrived, attributes_json)
  local variants = variants_of(experiment)
  local ended_at = ended_at_of(experiment)
  if not variants or not variants[variant] or (ended_at and tonumber(ts) >= ended_at) then
    orphans = orphans + 1 -- no such experiment or variant, or an exposure after the experiment ended
    return
  end
  local user_record = user_record_of(experiment, user)
  -- A user record always holds its variant: without one, there is no record yet (reading it loaded it whole).
  if read_fields(user_record, {'v'})[1] then
    return -- the first exposure wins
  end
  write_field(user_record, 'v', variant)
  write_field(user_record, 't', ts)
  add_sum(variant_key(experiment, variant), 'users', 1)
  enter_segments(experiment, user_record, variant, attributes_json)
  enter_covariates(experiment, user, user_record, variant, tonumber(ts))
  replay_pending(experiment, user, user_record, variant, tonumber(ts), tonumber(arrived))
end

-- An event counts at once for the experiments that already saw the user's exposure; it waits in the user's pending
-- list only if some experiment it feeds has not yet (an event that feeds nothing, or only experiments the user is
-- already in, can never be attributed later: only a first exposure replays the list).
local function apply_track_event(user, name, value, ts, arrived)
  local happened_at = tonumber(ts)
  local targets = metrics_fed_by(name)
  for _, target in ipairs(targets) do
    if target.role == 'binomial' or target.role == 'mean' then
      record_daily_total(user, name, value, happened_at, tonumber(arrived))
      break
    end
  end
  local waiting = false
  for _, target in ipairs(targets) do
    local user_record = user_record_of(target.experiment, user)
    -- The exposure and the user's numbers the update needs, in one round trip.
    local row = read_fields(user_record, {'v', 't', user_fields(target.metric, target.role)})
    if not (row[1] and row[2]) then
      waiting = true
    elseif attributed(target.experiment, target.metric, tonumber(row[2]), happened_at) then
      fold(target.experiment, user_record, row[1], target.metric, target.role, value, row[3], row[4])
    end
  end
  if waiting then
    local pending = pending_key(user)
    redis.call('LPUSH', pending, name .. '|' .. value .. '|' .. ts .. '|' .. arrived)
    redis.call('LTRIM', pending, 0, pending_max - 1)
    redis.call('EXPIRE', pending, pending_ttl)
  end
end

for i = FIRST_EVENT, #ARGV, FIELDS_PER_EVENT do
  local kind, mark, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local a, b, ts, arrived, attributes = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  if not first_delivery(user, mark, tonumber(arrived)) then
    duplicates = duplicates + 1
  else
    applied = applied + 1
    if kind == 'exposure' then
      apply_exposure(user, a, b, ts, arrived, attributes)
    else
      apply_track_event(user, a, b, ts, arrived)
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
