-- Folds one consumer batch of events into the experiments' sufficient statistics, atomically.
--
-- Key layout: splitstream/keys.py (the prefix arrives in ARGV so the names here match RedisKeys exactly).
-- No KEYS are declared: which keys an event touches depends on data read inside the script (the metric index),
-- so this script needs a standalone (non-cluster) Redis.
-- A mean metric's per-user cap (winsorizing) and any metric's attribution window (conversion_window_hours) are
-- read from the experiment definition, {p}:exp:{key}.
--
-- Attribution: an event counts for a metric of an experiment the user is exposed to iff
--   exposure_ts <= event_ts < exposure_ts + window   (no upper bound without a window),
-- whichever arrives first. An event that arrives before the exposure waits in the user's pending list (with its
-- arrival time) and is replayed when the exposure arrives only if event_arrived >= exposure_arrived - lateness.
--
-- Ratio metrics (role "ratio" for the numerator event, "denominator-count" / "denominator-sum" for the denominator
-- event): the user's numerator total m and denominator total d live in the user hash (m:{metric}, d:{metric}); the
-- variant keeps Σm, Σm² ({metric}:sum, :sumsq), Σd, Σd² (:dsum, :dsumsq) and Σm·d (:md). When one part moves, the
-- cross product moves by the change times the other part: Σm·d += Δm·d, or m·Δd.
--
-- CUPED covariates (binomial and mean metrics): every event whose name feeds such a metric also adds to the user's
-- daily totals ({p}:user:{user}:days, field "{event}|{day}" = "{Σ values},{count}"; days since the epoch, UTC, by
-- the event's own timestamp), kept covariate_days_kept days. At the user's first exposure, x for each metric
-- is the same metric over the cuped_lookback_days whole days before the exposure's day (binomial: 1 if any event,
-- mean: the total, capped like y), frozen from then on; the variant keeps Σx, Σx², Σx·y (:xsum, :xsumsq, :xy) and the
-- user x:{metric} when x is not 0. Pre-period events that arrive after the exposure was folded are not in x.
--
-- Segments: for each dimension the definition lists in "segments", the first exposure's attribute value (text,
-- "(none)" when absent, at most 64 characters) puts the user in that value's segment; a dimension keeps at most
-- max_segment_values values, later ones fold into "(other)". Each segment has the variant hashes of the main
-- statistics ({p}:exp:{scope}:seg:{dim}:{value}:v:{variant}), updated together with them; the values of a
-- dimension are the set {p}:exp:{scope}:segvals:{dim}.
--
-- ARGV: prefix, dedup_ttl, pending_ttl, pending_max, lateness_ms, poison_count, max_segment_values,
-- covariate_days_kept, then 8 fields
-- per event, in record order (arrived_ms: when the event reached the platform, epoch ms):
--   exposure: "exposure", event_id, user_id, stats scope (experiment and phase), variant, ts_ms, arrived_ms,
--             attributes (a JSON object, "" when none)
--   event:    "event",    event_id, user_id, name, value ("" when absent), ts_ms, arrived_ms, ""
-- Values travel as strings formatted by Python (shortest round-trip repr) so no precision is lost on the way in.
--
-- A Redis script is not rolled back when a command fails half-way, so every write below is guarded so that it
-- cannot fail: in particular a float sum that would overflow to infinity is skipped and counted instead.
--
-- Returns {applied, duplicates, orphan_exposures, overflow}.

local prefix = ARGV[1]
local dedup_ttl = tonumber(ARGV[2])
local pending_ttl = tonumber(ARGV[3])
local pending_max = tonumber(ARGV[4])
local lateness_ms = tonumber(ARGV[5])
local poison = tonumber(ARGV[6])
local max_segment_values = tonumber(ARGV[7])
local covariate_days_kept = tonumber(ARGV[8])
local FIRST_EVENT = 9
local FIELDS_PER_EVENT = 8
local OTHER_VALUES = '(other)'
local NO_VALUE = '(none)'
-- The arm of held-out users (splitstream/experiment.py HOLDOUT_ARM): folded like a variant of every experiment.
local HOLDOUT_ARM = '(holdout)'
local MS_PER_HOUR = 3600000
local PRUNE_EVERY = 64
local MS_PER_DAY = 86400000
local SECONDS_PER_DAY = 86400
local DEFAULT_LOOKBACK_DAYS = 14

local applied, duplicates, orphans, overflow = 0, 0, 0, 0

-- Statistics keys name an experiment's stats scope ("key" in phase 1, "key~N" after: splitstream/keys.py); the
-- definition is stored under the key alone.
local function experiment_key(scope) return prefix .. ':exp:' .. string.match(scope, '^[^~]+') end
local function variant_key(experiment, variant) return prefix .. ':exp:' .. experiment .. ':v:' .. variant end
local function user_key(experiment, user) return prefix .. ':exp:' .. experiment .. ':u:' .. user end
local function pending_key(user) return prefix .. ':user:' .. user .. ':pending' end
local function daily_totals_key(user) return prefix .. ':user:' .. user .. ':days' end
local function seen_key(user) return prefix .. ':user:' .. user .. ':seen' end
local function event_metrics_key(name) return prefix .. ':event-metrics:' .. name end
local function stats_key(counter) return prefix .. ':stats:' .. counter end
local function segment_key(scope, dimension, value, variant)
  return prefix .. ':exp:' .. scope .. ':seg:' .. dimension .. ':' .. value .. ':v:' .. variant
end
local function segment_values_key(scope, dimension) return prefix .. ':exp:' .. scope .. ':segvals:' .. dimension end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

-- What one event adds to a total: its value, or 1 when it has none.
local function event_value(value)
  if value == '' then return 1 end
  return tonumber(value)
end

-- Per-call caches: the script runs atomically, so nothing they hold can change while it runs.
local definitions = {}
local function definition_of(experiment)
  local cached = definitions[experiment]
  if cached == nil then
    cached = false
    local raw = redis.call('GET', experiment_key(experiment))
    local ok, definition = pcall(cjson.decode, raw or '')
    if raw and ok and type(definition) == 'table' then
      cached = definition
    end
    definitions[experiment] = cached
  end
  return cached
end

local variant_sets = {}
local function variants_of(experiment)
  local cached = variant_sets[experiment]
  if cached == nil then
    cached = false
    local definition = definition_of(experiment)
    if definition and type(definition.variants) == 'table' then
      cached = {[HOLDOUT_ARM] = true}
      for _, variant in ipairs(definition.variants) do
        cached[variant.key] = true
      end
    end
    variant_sets[experiment] = cached
  end
  return cached
end

-- A per-call cached lookup experiment -> {metric -> number} of one numeric field of the metric definitions;
-- metrics without it are left out (an absent value is JSON null, cjson.null, not a number).
local function metric_numbers(field)
  local tables = {}
  return function(experiment)
    local cached = tables[experiment]
    if cached == nil then
      cached = {}
      local definition = definition_of(experiment)
      if definition and type(definition.metrics) == 'table' then
        for _, metric in ipairs(definition.metrics) do
          if type(metric) == 'table' and type(metric.key) == 'string' and type(metric[field]) == 'number' then
            cached[metric.key] = metric[field]
          end
        end
      end
      tables[experiment] = cached
    end
    return cached
  end
end

-- The dimensions the experiment keeps segments by (strings only).
local dimension_lists = {}
local function dimensions_of(experiment)
  local cached = dimension_lists[experiment]
  if cached == nil then
    cached = {}
    local definition = definition_of(experiment)
    if definition and type(definition.segments) == 'table' then
      for _, dimension in ipairs(definition.segments) do
        if type(dimension) == 'string' then table.insert(cached, dimension) end
      end
    end
    dimension_lists[experiment] = cached
  end
  return cached
end

-- The hashes one update of an exposed user goes to: the variant's, and the variant's in each of the user's segments.
local function stats_targets(experiment, user_hash, variant)
  local targets = {variant_key(experiment, variant)}
  local dimensions = dimensions_of(experiment)
  if #dimensions > 0 then
    local fields = {}
    for index, dimension in ipairs(dimensions) do fields[index] = 's:' .. dimension end
    local values = redis.call('HMGET', user_hash, unpack(fields))
    for index, dimension in ipairs(dimensions) do
      if values[index] then table.insert(targets, segment_key(experiment, dimension, values[index], variant)) end
    end
  end
  return targets
end

-- Puts a newly exposed user in a segment of each dimension, from the exposure's attributes.
local function enter_segments(experiment, user_hash, variant, attributes_json)
  local dimensions = dimensions_of(experiment)
  if #dimensions == 0 then return end
  local attributes = {}
  if attributes_json ~= '' then
    local ok, decoded = pcall(cjson.decode, attributes_json)
    if ok and type(decoded) == 'table' then attributes = decoded end
  end
  for _, dimension in ipairs(dimensions) do
    local raw = attributes[dimension]
    local value = NO_VALUE
    if type(raw) == 'string' and raw ~= '' then
      value = string.sub(raw, 1, 64)
    elseif type(raw) == 'number' then
      if raw == math.floor(raw) and math.abs(raw) < 1e15 then
        value = string.format('%d', raw)
      else
        value = string.format('%.15g', raw)
      end
    elseif type(raw) == 'boolean' then
      value = tostring(raw)
    end
    local values = segment_values_key(experiment, dimension)
    if redis.call('SISMEMBER', values, value) == 0 then
      if redis.call('SCARD', values) >= max_segment_values then value = OTHER_VALUES end
      redis.call('SADD', values, value)
    end
    redis.call('HSET', user_hash, 's:' .. dimension, value)
    redis.call('HINCRBY', segment_key(experiment, dimension, value, variant), 'users', 1)
  end
end

local caps_of = metric_numbers('cap')
local window_hours_of = metric_numbers('conversion_window_hours')

-- Whether an event at happened_at falls in the metric's attribution window of an exposure at exposed_at.
local function attributed(experiment, metric, exposed_at, happened_at)
  if happened_at < exposed_at then
    return false
  end
  local hours = window_hours_of(experiment)[metric]
  return hours == nil or happened_at < exposed_at + hours * MS_PER_HOUR
end

-- Entries "experiment|metric|role" of the metric index, parsed (role: splitstream.experiment.Metric.feeds).
local metric_indexes = {}
local function metrics_fed_by(name)
  local cached = metric_indexes[name]
  if cached == nil then
    cached = {}
    for _, entry in ipairs(redis.call('SMEMBERS', event_metrics_key(name))) do
      local experiment, metric, role = string.match(entry, '^([^|]+)|([^|]+)|([^|]+)$')
      if experiment then
        table.insert(cached, {experiment = experiment, metric = metric, role = role})
      end
    end
    metric_indexes[name] = cached
  end
  return cached
end

-- Adds each {field, delta} of increments to the variant's statistics and to its segments' among the user's, or none
-- of them: a delta that is not finite, or that would take the variant's sum past the float range, skips the whole
-- update (counted in overflow, and the caller leaves the user's totals as they were). Returns whether it applied.
-- The variant sums this call has seen, read once per hash and field and kept up to date here (only this script
-- writes them, and nothing else runs while it does): what the overflow check compares against.
local known_sums = {}
local function sums_of(key, increments)
  local known = known_sums[key]
  if known == nil then
    known = {}
    known_sums[key] = known
  end
  local missing = {}
  for _, increment in ipairs(increments) do
    if known[increment[1]] == nil then table.insert(missing, increment[1]) end
  end
  if #missing > 0 then
    local values = redis.call('HMGET', key, unpack(missing))
    for index, field in ipairs(missing) do known[field] = tonumber(values[index] or '0') end
  end
  return known
end

local function add_to_stats(experiment, user_hash, variant, increments)
  local sums = sums_of(variant_key(experiment, variant), increments)
  for _, increment in ipairs(increments) do
    if not (finite(increment[2]) and finite(sums[increment[1]] + increment[2])) then
      overflow = overflow + 1
      return false
    end
  end
  for _, increment in ipairs(increments) do
    sums[increment[1]] = sums[increment[1]] + increment[2]
  end
  for _, target in ipairs(stats_targets(experiment, user_hash, variant)) do
    for _, increment in ipairs(increments) do
      if increment[2] ~= 0 then redis.call('HINCRBYFLOAT', target, increment[1], increment[2]) end
    end
  end
  return true
end

local function user_number(user_hash, field)
  return tonumber(redis.call('HGET', user_hash, field) or '0')
end

-- Adds one event to one exposed user's y (binomial, mean) or ratio numerator m. Binomial: y = 1 once the user
-- converts (at most once). Mean and ratio: the user's raw running total T is kept in the user hash and y = T, or,
-- with a mean metric's cap c, the winsorized y = min(T, c) (from above only: negative totals stay). On
-- T_old -> T_new, Σy gains y(T_new) − y(T_old) and Σy² gains y(T_new)² − y(T_old)², so both stay sums over users
-- of their (capped) totals; Σx·y gains x·Δy and a ratio's Σm·d gains Δm·d.
local function fold_value(experiment, user_hash, variant, metric, metric_type, value)
  local total_field = 'm:' .. metric
  -- The other per-user number this update needs: a ratio's denominator, else the CUPED covariate (one round trip).
  local other_field = (metric_type == 'ratio' and 'd:' or 'x:') .. metric
  local stored = redis.call('HMGET', user_hash, total_field, other_field)
  local other = tonumber(stored[2] or '0')
  local old, new, y_old, y_new
  if metric_type == 'binomial' then
    if stored[1] then return end
    old, new, y_old, y_new = 0, 1, 0, 1
  else
    old = tonumber(stored[1] or '0')
    new = old + event_value(value)
    y_old, y_new = old, new
    local cap = metric_type == 'mean' and caps_of(experiment)[metric]
    if cap then y_old, y_new = math.min(old, cap), math.min(new, cap) end
  end
  local delta = y_new - y_old
  local increments = {{metric .. ':sum', delta}, {metric .. ':sumsq', y_new * y_new - y_old * y_old}}
  if metric_type == 'ratio' then
    table.insert(increments, {metric .. ':md', delta * other})
  elseif other ~= 0 then
    table.insert(increments, {metric .. ':xy', other * delta})
  end
  if finite(new) and add_to_stats(experiment, user_hash, variant, increments) then
    redis.call('HSET', user_hash, total_field, new)
  end
end

-- Adds one event to one exposed user's ratio denominator d: 1 (count), or the event's value (sum).
local function fold_denominator(experiment, user_hash, variant, metric, aggregate, value)
  local step = 1
  if aggregate == 'sum' then step = event_value(value) end
  local total_field = 'd:' .. metric
  local old = user_number(user_hash, total_field)
  local new = old + step
  local increments = {
    {metric .. ':dsum', step}, {metric .. ':dsumsq', new * new - old * old},
    {metric .. ':md', user_number(user_hash, 'm:' .. metric) * step},
  }
  if finite(new) and add_to_stats(experiment, user_hash, variant, increments) then
    redis.call('HSET', user_hash, total_field, new)
  end
end

local function fold(experiment, user_hash, variant, metric, role, value)
  local aggregate = string.match(role, '^denominator%-(%a+)$')
  if aggregate then
    fold_denominator(experiment, user_hash, variant, metric, aggregate, value)
  elseif role == 'binomial' or role == 'mean' or role == 'ratio' then
    fold_value(experiment, user_hash, variant, metric, role, value)
  end
end

-- Binomial and mean metrics of the experiment, with what their covariate needs, and the lookback in days.
local covariate_plans = {}
local function covariate_plan_of(experiment)
  local cached = covariate_plans[experiment]
  if cached == nil then
    cached = {metrics = {}, lookback = DEFAULT_LOOKBACK_DAYS}
    local definition = definition_of(experiment)
    if definition and type(definition.analysis) == 'table'
        and type(definition.analysis.cuped_lookback_days) == 'number' then
      cached.lookback = math.min(definition.analysis.cuped_lookback_days, covariate_days_kept)
    end
    if definition and type(definition.metrics) == 'table' then
      for _, metric in ipairs(definition.metrics) do
        if type(metric) == 'table' and type(metric.key) == 'string' and type(metric.event) == 'string'
            and (metric.type == 'binomial' or metric.type == 'mean') then
          table.insert(cached.metrics, {key = metric.key, type = metric.type, event = metric.event,
                                        cap = type(metric.cap) == 'number' and metric.cap or nil})
        end
      end
    end
    covariate_plans[experiment] = cached
  end
  return cached
end

-- A day's total and count of one event name, as stored: "{sum},{count}", the sum with every digit of the double.
local function daily_total(raw)
  if not raw then return 0, 0 end
  local sum, count = string.match(raw, '^([^,]+),(%d+)$')
  return tonumber(sum) or 0, tonumber(count) or 0
end

-- Adds an event to the user's daily totals, pruning days no experiment can look back to whenever a new day starts
-- for that name.
local function record_daily_total(user, name, value, happened_at, arrived_at)
  local day = math.floor(happened_at / MS_PER_DAY)
  local oldest_kept = math.floor(arrived_at / MS_PER_DAY) - covariate_days_kept - 1
  local v = event_value(value)
  if day < oldest_kept or not v then return end
  local key = daily_totals_key(user)
  local field = name .. '|' .. day
  local raw = redis.call('HGET', key, field)
  local sum, count = daily_total(raw)
  sum = sum + v
  if not finite(sum) then
    overflow = overflow + 1
    return
  end
  redis.call('HSET', key, field, string.format('%.17g', sum) .. ',' .. (count + 1))
  if not raw then
    -- A new day: drop days past reach, and keep the hash for as long as this day can be looked back to (later
    -- events of a day already stored need no new expiry: the day's own first event set one long enough).
    for _, existing in ipairs(redis.call('HKEYS', key)) do
      local existing_day = tonumber(string.match(existing, '|(%d+)$') or '')
      if existing_day and existing_day < oldest_kept then redis.call('HDEL', key, existing) end
    end
    redis.call('EXPIRE', key, (covariate_days_kept + 2) * SECONDS_PER_DAY)
  end
end

-- x of each binomial and mean metric for a user first exposed at exposed_at (see the header), with Σx and Σx² added
-- to the variant's statistics and segments.
local function enter_covariates(experiment, user, user_hash, variant, exposed_at)
  local plan = covariate_plan_of(experiment)
  local key = daily_totals_key(user)
  if #plan.metrics == 0 or redis.call('EXISTS', key) == 0 then return end
  local exposure_day = math.floor(exposed_at / MS_PER_DAY)
  local totals = {}
  for _, metric in ipairs(plan.metrics) do
    local event_totals = totals[metric.event]
    if event_totals == nil then
      local fields = {}
      for day = exposure_day - plan.lookback, exposure_day - 1 do
        table.insert(fields, metric.event .. '|' .. day)
      end
      event_totals = {sum = 0, count = 0}
      for _, raw in ipairs(redis.call('HMGET', key, unpack(fields))) do
        local sum, count = daily_total(raw)
        event_totals.sum = event_totals.sum + sum
        event_totals.count = event_totals.count + count
      end
      totals[metric.event] = event_totals
    end
    local x = event_totals.sum
    if metric.type == 'binomial' then
      x = event_totals.count > 0 and 1 or 0
    elseif metric.cap then
      x = math.min(x, metric.cap)
    end
    if x ~= 0 and add_to_stats(experiment, user_hash, variant,
                               {{metric.key .. ':xsum', x}, {metric.key .. ':xsumsq', x * x}}) then
      redis.call('HSET', user_hash, 'x:' .. metric.key, x)
    end
  end
end

-- The user's events that arrived before this exposure, within the lateness bound of it, count for this experiment
-- where they fall in the metric's window. Entries written before arrival times were kept ("name|value|ts") use
-- their event time as arrival.
local function replay_pending(experiment, user, user_hash, variant, exposed_at, exposure_arrived)
  local earliest_arrival = exposure_arrived - lateness_ms
  for _, entry in ipairs(redis.call('LRANGE', pending_key(user), 0, -1)) do
    local name, value, ts, arrived = string.match(entry, '^([^|]+)|([^|]*)|([^|]+)|?([^|]*)$')
    local happened_at = tonumber(ts or '')
    if name and happened_at and (tonumber(arrived) or happened_at) >= earliest_arrival then
      for _, target in ipairs(metrics_fed_by(name)) do
        if target.experiment == experiment and attributed(experiment, target.metric, exposed_at, happened_at) then
          fold(experiment, user_hash, variant, target.metric, target.role, value)
        end
      end
    end
  end
end

local function apply_exposure(user, experiment, variant, ts, arrived, attributes_json)
  local variants = variants_of(experiment)
  if not variants or not variants[variant] then
    orphans = orphans + 1
    return
  end
  local user_hash = user_key(experiment, user)
  if redis.call('EXISTS', user_hash) == 1 then
    return -- the first exposure wins
  end
  redis.call('HSET', user_hash, 'variant', variant, 'ts', ts)
  redis.call('HINCRBY', variant_key(experiment, variant), 'users', 1)
  enter_segments(experiment, user_hash, variant, attributes_json)
  enter_covariates(experiment, user, user_hash, variant, tonumber(ts))
  replay_pending(experiment, user, user_hash, variant, tonumber(ts), tonumber(arrived))
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
    local user_hash = user_key(target.experiment, user)
    local exposure = redis.call('HMGET', user_hash, 'variant', 'ts')
    if not (exposure[1] and exposure[2]) then
      waiting = true
    elseif attributed(target.experiment, target.metric, tonumber(exposure[2]), happened_at) then
      fold(target.experiment, user_hash, exposure[1], target.metric, target.role, value)
    end
  end
  if waiting then
    local pending = pending_key(user)
    redis.call('LPUSH', pending, name .. '|' .. value .. '|' .. ts .. '|' .. arrived)
    redis.call('LTRIM', pending, 0, pending_max - 1)
    redis.call('EXPIRE', pending, pending_ttl)
  end
end

-- Marks the user's event as applied; false if it already was (a redelivery or a resend). The marks of one user share
-- a hash (event id -> hour of arrival): far less memory than a key per event. Each mark lives at least dedup_ttl:
-- the hash expires dedup_ttl after the user's last event, and whenever it has grown by PRUNE_EVERY marks, those
-- whose whole hour of arrival lies more than dedup_ttl before this arrival are dropped.
local mark_counts = {}
local function first_delivery(user, event_id, arrived_at)
  local key = seen_key(user)
  local hour = math.floor(arrived_at / MS_PER_HOUR)
  if redis.call('HSETNX', key, event_id, hour) == 0 then
    return false
  end
  -- The user's mark count, read once per call and counted here (so pruning happens at the same marks however the
  -- events were batched); the expiry is set once per call: the whole call happens at one instant.
  local count = mark_counts[user]
  if count == nil then
    count = redis.call('HLEN', key)
    redis.call('EXPIRE', key, dedup_ttl)
  else
    count = count + 1
  end
  if count % PRUNE_EVERY == 0 then
    local expired_before = arrived_at - dedup_ttl * 1000
    local marks = redis.call('HGETALL', key)
    for index = 1, #marks, 2 do
      if (tonumber(marks[index + 1]) + 1) * MS_PER_HOUR <= expired_before then
        redis.call('HDEL', key, marks[index])
      end
    end
    count = redis.call('HLEN', key)
  end
  mark_counts[user] = count
  return true
end

for i = FIRST_EVENT, #ARGV, FIELDS_PER_EVENT do
  local kind, event_id, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local a, b, ts, arrived, attributes = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  if not first_delivery(user, event_id, tonumber(arrived)) then
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

redis.call('INCRBY', stats_key('applied'), applied)
redis.call('INCRBY', stats_key('duplicates'), duplicates)
redis.call('INCRBY', stats_key('orphan_exposures'), orphans)
redis.call('INCRBY', stats_key('overflow'), overflow)
redis.call('INCRBY', stats_key('poison'), poison)

return {applied, duplicates, orphans, overflow}
