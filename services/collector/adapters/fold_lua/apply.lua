-- fold.lua, part 7 of 7: applying exposures and events, the batch loop and the counters.
--
-- Modes (ARGV 9). "all": the whole fold of a batch in one atomic call, on a Redis that holds every key (standalone).
-- On Redis Cluster a user's state and an experiment's statistics lie in different slots, so the consumer folds a
-- batch in three steps (services/collector/adapters/fold_steps.py), each call within keys of one node:
--   "decide":      per group of users: which events are first deliveries (as "all" would decide) and, for each
--                  exposure, the user's daily totals (daily_totals_text); writes nothing;
--   "experiments": per experiment: the first deliveries among the events that feed it, folded as "all" would;
--   "record":      per group of users: the dedup marks and the daily totals, as "all" writes them.
-- A crash between the steps replays the batch: "decide" answers as before (nothing it reads was written yet),
-- "record" skips what its marks show done, and "experiments" skips the Kafka records it applied already: a user
-- record keeps the last one applied to it ("o": "partition:offset"; one user's records are all on one partition, in
-- order), a pending entry its own.
local current_record = nil -- mode "experiments": the record being applied, "partition:offset"

-- Whether record (partition:offset) is at or before stored on the same partition.
local function at_or_before(stored, record)
  local stored_partition, stored_offset = string.match(stored or '', '^(%d+):(%d+)$')
  local partition, offset = string.match(record, '^(%d+):(%d+)$')
  return stored_partition ~= nil and stored_partition == partition and tonumber(offset) <= tonumber(stored_offset)
end

-- Mode "experiments": whether the current record was applied to user_record before this call; if not, the record
-- now says it is (from the record as this call loaded it: several metrics of one event each get their update).
local function applied_before(user_record)
  if not current_record then return false end
  record_values(user_record)
  if at_or_before(copies[user_record].loaded_o, current_record) then return true end
  write_field(user_record, 'o', current_record)
  return false
end

-- The user's events that arrived before this exposure, within the lateness bound of it, count for this experiment
-- where they fall in the metric's window. Entries written before arrival times were kept ("name|value|ts") use
-- their event time as arrival. Only a first exposure replays, so the scope's list is dropped once read.
local function replay_pending(experiment, user, user_record, variant, exposed_at, exposure_arrived)
  local pending = pending_key(experiment, user)
  local entries = redis.call('LRANGE', pending, 0, -1)
  if #entries > 0 then redis.call('DEL', pending) end
  if mode == 'all' then -- lists of the layout before are in the user's slot, and never on a cluster
    for _, entry in ipairs(redis.call('LRANGE', legacy_pending_key(user), 0, -1)) do
      entries[#entries + 1] = entry
    end
  end
  local earliest_arrival = exposure_arrived - lateness_ms
  for _, entry in ipairs(entries) do
    local name, value, ts, arrived = string.match(entry, '^([^|]+)|([^|]*)|([^|]+)|?([^|]*)|?[^|]*$')
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

local function apply_exposure(user, place, experiment, variant, ts, exposed_at, arrived_at, attributes_json, totals)
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
  if current_record then write_field(user_record, 'o', current_record) end
  add_sum(variant_key(experiment, variant), 'users', 1)
  enter_segments(experiment, user_record, variant, attributes_json)
  enter_covariates(experiment, user, user_record, variant, exposed_at, totals)
  replay_pending(experiment, user, user_record, variant, exposed_at, arrived_at)
end

-- An event counts at once for the experiments that already saw the user's exposure; it waits in the pending list
-- of each experiment it feeds that has not yet (only a first exposure replays a list).
local function apply_track_event(user, place, name, value, ts, happened_at, arrived, arrived_at)
  local targets = metrics_fed_by(name)
  local amount = event_value(value)
  if targets.daily and mode == 'all' then record_daily_total(user, name, amount, happened_at, arrived_at) end
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
    elseif attributed(target, exposed_at, happened_at) and not applied_before(user_record) then
      local values = record_values(user_record)
      fold(target, user_record, variant, amount, values[target.own], values[target.other])
    end
  end
  if waiting then
    local entry = name .. '|' .. value .. '|' .. ts .. '|' .. arrived
    if current_record then entry = entry .. '|' .. current_record end
    for _, experiment in ipairs(waiting) do
      local pending = pending_key(experiment, user)
      local newest = current_record and redis.call('LINDEX', pending, 0)
      if not (newest and at_or_before(string.match(newest, '([^|]*)$'), current_record)) then
        redis.call('LPUSH', pending, entry)
        redis.call('LTRIM', pending, 0, pending_max - 1)
        redis.call('EXPIRE', pending, pending_ttl)
      end
    end
  end
end

local decisions, snapshots = {}, {} -- mode "decide": its answer
for i = FIRST_EVENT, #ARGV, FIELDS_PER_EVENT do
  local kind, mark, user, place = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local a, b, ts, arrived, attributes = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local arrived_at = tonumber(arrived)
  if mode == 'experiments' then -- first deliveries only, decided by the call in mode "decide"
    applied = applied + 1
    current_record = ARGV[i + 9]
    if kind == 'exposure' then
      apply_exposure(user, place, a, b, ts, tonumber(ts), arrived_at, attributes, ARGV[i + 10])
    else
      apply_track_event(user, place, a, b, ts, tonumber(ts), arrived, arrived_at)
    end
  elseif not first_delivery(user, mark, arrived_at) then
    duplicates = duplicates + 1
    decisions[#decisions + 1] = '0'
  else
    applied = applied + 1
    decisions[#decisions + 1] = '1'
    if mode == 'all' then
      if kind == 'exposure' then
        apply_exposure(user, place, a, b, ts, tonumber(ts), arrived_at, attributes)
      else
        apply_track_event(user, place, a, b, ts, tonumber(ts), arrived, arrived_at)
      end
    elseif kind == 'exposure' then
      if mode == 'decide' then
        snapshots[#snapshots + 1] = daily_totals_text(user, math.floor(tonumber(ts) / MS_PER_DAY))
      end
    elseif metrics_fed_by(a).daily then
      record_daily_total(user, a, event_value(b), tonumber(ts), arrived_at)
    end
  end
end

if mode == 'decide' then
  return {applied, duplicates, 0, 0, table.concat(decisions), snapshots}
end
flush()
if mode ~= 'experiments' then keep_user_states() end
if mode ~= 'all' then
  return {applied, duplicates, orphans, overflow} -- the consumer adds the counters up (fold_steps.py)
end
redis.call('INCRBY', stats_key('applied'), applied)
redis.call('INCRBY', stats_key('duplicates'), duplicates)
redis.call('INCRBY', stats_key('orphan_exposures'), orphans)
redis.call('INCRBY', stats_key('overflow'), overflow)
redis.call('INCRBY', stats_key('poison'), poison)

return {applied, duplicates, orphans, overflow}
