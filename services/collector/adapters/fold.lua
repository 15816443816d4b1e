-- Folds one consumer batch of events into the experiments' sufficient statistics, atomically.
--
-- Key layout: splitstream/keys.py (the prefix arrives in ARGV so the names here match RedisKeys exactly).
-- No KEYS are declared: which keys an event touches depends on data read inside the script (the metric index),
-- so this script needs a standalone (non-cluster) Redis.
-- A mean metric's per-user cap (winsorizing) is read from the experiment definition, {p}:exp:{key}.
--
-- ARGV: prefix, dedup_ttl, pending_ttl, pending_max, poison_count, then 6 fields per event, in record order:
--   exposure: "exposure", event_id, user_id, experiment, variant, ts_ms
--   event:    "event",    event_id, user_id, name, value ("" when absent), ts_ms
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
local poison = tonumber(ARGV[5])
local FIRST_EVENT = 6
local FIELDS_PER_EVENT = 6

local applied, duplicates, orphans, overflow = 0, 0, 0, 0

local function experiment_key(experiment) return prefix .. ':exp:' .. experiment end
local function variant_key(experiment, variant) return prefix .. ':exp:' .. experiment .. ':v:' .. variant end
local function user_key(experiment, user) return prefix .. ':exp:' .. experiment .. ':u:' .. user end
local function pending_key(user) return prefix .. ':user:' .. user .. ':pending' end
local function seen_key(event_id) return prefix .. ':seen:' .. event_id end
local function event_metrics_key(name) return prefix .. ':event-metrics:' .. name end
local function stats_key(counter) return prefix .. ':stats:' .. counter end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
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
      cached = {}
      for _, variant in ipairs(definition.variants) do
        cached[variant.key] = true
      end
    end
    variant_sets[experiment] = cached
  end
  return cached
end

-- metric -> cap for the experiment's capped metrics; an absent cap is JSON null (cjson.null), not a number.
local cap_tables = {}
local function caps_of(experiment)
  local cached = cap_tables[experiment]
  if cached == nil then
    cached = {}
    local definition = definition_of(experiment)
    if definition and type(definition.metrics) == 'table' then
      for _, metric in ipairs(definition.metrics) do
        if type(metric) == 'table' and type(metric.key) == 'string' and type(metric.cap) == 'number' then
          cached[metric.key] = metric.cap
        end
      end
    end
    cap_tables[experiment] = cached
  end
  return cached
end

-- Entries "experiment|metric|type" of the metric index, parsed.
local metric_indexes = {}
local function metrics_fed_by(name)
  local cached = metric_indexes[name]
  if cached == nil then
    cached = {}
    for _, entry in ipairs(redis.call('SMEMBERS', event_metrics_key(name))) do
      local experiment, metric, metric_type = string.match(entry, '^([^|]+)|([^|]+)|([^|]+)$')
      if experiment then
        table.insert(cached, {experiment = experiment, metric = metric, type = metric_type})
      end
    end
    metric_indexes[name] = cached
  end
  return cached
end

-- Adds one event to one exposed user's metric. Binomial: y_i = 1 once the user converts (at most once).
-- Mean: the user's raw running total T is kept in the user hash and y_i = T, or, with a cap c, the winsorized
-- y_i = min(T, c) (from above only: negative totals stay). On T_old -> T_new, Σy gains y(T_new) − y(T_old) and
-- Σy² gains y(T_new)² − y(T_old)², so both stay sums over users of their (capped) totals.
local function fold(experiment, user_hash, variant, metric, metric_type, value)
  local total_field = 'm:' .. metric
  local stats = variant_key(experiment, variant)
  local sum_field, sumsq_field = metric .. ':sum', metric .. ':sumsq'
  if metric_type == 'binomial' then
    if redis.call('HSETNX', user_hash, total_field, 1) == 1 then
      redis.call('HINCRBYFLOAT', stats, sum_field, 1)
      redis.call('HINCRBYFLOAT', stats, sumsq_field, 1)
    end
  elseif metric_type == 'mean' then
    local v = 1
    if value ~= '' then v = tonumber(value) end
    local old = tonumber(redis.call('HGET', user_hash, total_field) or '0')
    local new = old + v
    local y_old, y_new, sum_delta = old, new, v
    local cap = caps_of(experiment)[metric]
    if cap then
      y_old, y_new = math.min(old, cap), math.min(new, cap)
      sum_delta = y_new - y_old
    end
    local square_delta = y_new * y_new - y_old * y_old
    local sums = redis.call('HMGET', stats, sum_field, sumsq_field)
    local sum_after = tonumber(sums[1] or '0') + sum_delta
    local sumsq_after = tonumber(sums[2] or '0') + square_delta
    if not (finite(new) and finite(y_new * y_new) and finite(y_old * y_old) and finite(sum_after)
            and finite(sumsq_after)) then
      overflow = overflow + 1
      return
    end
    redis.call('HSET', user_hash, total_field, new)
    redis.call('HINCRBYFLOAT', stats, sum_field, sum_delta)
    redis.call('HINCRBYFLOAT', stats, sumsq_field, square_delta)
  end
end

-- The user's events that arrived before this exposure but happened at or after it count for this experiment.
local function replay_pending(experiment, user, user_hash, variant, exposed_at)
  for _, entry in ipairs(redis.call('LRANGE', pending_key(user), 0, -1)) do
    local name, value, ts = string.match(entry, '^([^|]+)|([^|]*)|([^|]+)$')
    if name and tonumber(ts) >= exposed_at then
      for _, target in ipairs(metrics_fed_by(name)) do
        if target.experiment == experiment then
          fold(experiment, user_hash, variant, target.metric, target.type, value)
        end
      end
    end
  end
end

local function apply_exposure(user, experiment, variant, ts)
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
  replay_pending(experiment, user, user_hash, variant, tonumber(ts))
end

local function apply_track_event(user, name, value, ts)
  local pending = pending_key(user)
  redis.call('LPUSH', pending, name .. '|' .. value .. '|' .. ts)
  redis.call('LTRIM', pending, 0, pending_max - 1)
  redis.call('EXPIRE', pending, pending_ttl)
  local happened_at = tonumber(ts)
  for _, target in ipairs(metrics_fed_by(name)) do
    local user_hash = user_key(target.experiment, user)
    local exposure = redis.call('HMGET', user_hash, 'variant', 'ts')
    if exposure[1] and exposure[2] and happened_at >= tonumber(exposure[2]) then
      fold(target.experiment, user_hash, exposure[1], target.metric, target.type, value)
    end
  end
end

for i = FIRST_EVENT, #ARGV, FIELDS_PER_EVENT do
  local kind, event_id, user = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local a, b, ts = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5]
  if not redis.call('SET', seen_key(event_id), '1', 'NX', 'EX', dedup_ttl) then
    duplicates = duplicates + 1
  else
    applied = applied + 1
    if kind == 'exposure' then
      apply_exposure(user, a, b, ts)
    else
      apply_track_event(user, a, b, ts)
    end
  end
end

redis.call('INCRBY', stats_key('applied'), applied)
redis.call('INCRBY', stats_key('duplicates'), duplicates)
redis.call('INCRBY', stats_key('orphan_exposures'), orphans)
redis.call('INCRBY', stats_key('overflow'), overflow)
redis.call('INCRBY', stats_key('poison'), poison)

return {applied, duplicates, orphans, overflow}
