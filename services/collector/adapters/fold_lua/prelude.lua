-- fold.lua, part 1 of 7 (services/collector/adapters/fold.py joins the parts, in order, into one script).
--
-- Folds one consumer batch of events into the experiments' sufficient statistics, atomically.
--
-- Key layout: splitstream/keys.py (the prefix arrives in ARGV so the names here match RedisKeys exactly).
-- No KEYS are declared: which keys an event touches depends on data read inside the script (the metric index),
-- so this script needs a standalone (non-cluster) Redis.
-- A mean metric's per-user cap (winsorizing) and any metric's attribution window (conversion_window_hours) are
-- read from the experiment definition, {p}:exp:{<key>}.
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
-- daily totals (in the user state {p}:user:{<user>}, field "{event}" = "{day}:{Σ values},{count};..." newest day
-- first; days since the epoch, UTC, by the event's own timestamp), kept covariate_days_kept days. At the user's first
-- exposure, x for each metric is the same metric over the cuped_lookback_days whole days before the exposure's day
-- (binomial: 1 if any event, mean: the total, capped like y), frozen from then on; the variant keeps Σx, Σx², Σx·y
-- (:xsum, :xsumsq, :xy) and the user x:{metric} when x is not 0. Pre-period events that arrive after the exposure
-- was folded are not in x.
--
-- Segments: for each dimension the definition lists in "segments", the first exposure's attribute value (text,
-- "(none)" when absent, at most 64 characters) puts the user in that value's segment; a dimension keeps at most
-- max_segment_values values, later ones fold into "(other)". Each segment has the variant hashes of the main
-- statistics ({p}:exp:[scope]:seg:{dim}:{value}:v:{variant}), updated together with them; the values of a
-- dimension are the set {p}:exp:[scope]:segvals:{dim}. ([scope]: the tagged scope, splitstream/keys.py.)
--
-- ARGV: prefix, dedup_ttl, pending_ttl, pending_max, lateness_ms, poison_count, max_segment_values,
-- covariate_days_kept, then 8 fields
-- per event, in record order (arrived_ms: when the event reached the platform, epoch ms):
--   exposure: "exposure", mark, user_id, stats scope (experiment and phase), variant, ts_ms, arrived_ms,
--             attributes (a JSON object, "" when none)
--   event:    "event",    mark,     user_id, name, value ("" when absent), ts_ms, arrived_ms, ""
-- mark: the event's dedup mark (splitstream/keys.py dedup_mark: 8 bytes of a hash of its event id).
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

-- Statistics keys name an experiment's stats scope ("key" in phase 1, "key~N" after: splitstream/keys.py) with the
-- experiment key as the Redis Cluster hash tag: {p}:exp:{key} or {p}:exp:{key}~N; the definition is stored under
-- the tagged key alone. Built once per scope (and variant) per call: they are on every event's path.
local scope_keys = {}
local function scope_key(scope)
  local cached = scope_keys[scope]
  if cached == nil then
    local key, phase = string.match(scope, '^([^~]+)(.*)$')
    cached = prefix .. ':exp:{' .. key .. '}' .. phase
    scope_keys[scope] = cached
  end
  return cached
end
local function experiment_key(scope) return prefix .. ':exp:{' .. string.match(scope, '^[^~]+') .. '}' end
local variant_keys = {}
local function variant_key(experiment, variant)
  local id = experiment .. '|' .. variant
  local cached = variant_keys[id]
  if cached == nil then
    cached = scope_key(experiment) .. ':v:' .. variant
    variant_keys[id] = cached
  end
  return cached
end
local function user_key(experiment, user) return scope_key(experiment) .. ':u:' .. user end
-- The user's state shared by all experiments (dedup marks and daily totals, one hash) and pending list, tagged by
-- the user id.
local function user_state_key(user) return prefix .. ':user:{' .. user .. '}' end
local function pending_key(user) return user_state_key(user) .. ':pending' end
local function event_metrics_key(name) return prefix .. ':event-metrics:' .. name end
local function stats_key(counter) return prefix .. ':stats:' .. counter end
local function segment_key(scope, dimension, value, variant)
  return scope_key(scope) .. ':seg:' .. dimension .. ':' .. value .. ':v:' .. variant
end
local function segment_values_key(scope, dimension) return scope_key(scope) .. ':segvals:' .. dimension end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

-- Whole-number additions to the statistics are summed here and written once per hash and field when the call ends
-- (flush_deferred): whole numbers below 2^53 add exactly in any grouping, so what is stored is what adding them one
-- by one stores, at one write per field per call instead of one per event. Fractional additions go at once, in order
-- (statistics part), after any deferred amount of that field.
local EXACT_INTEGERS = 2 ^ 53
local deferred = {}
local function defer(target, field, delta)
  local owed = deferred[target]
  if owed == nil then
    owed = {}
    deferred[target] = owed
  end
  owed[field] = (owed[field] or 0) + delta
end

-- Removes and returns what is deferred for one field, or nil.
local function take_deferred(target, field)
  local owed = deferred[target]
  local amount = owed and owed[field]
  if amount then owed[field] = nil end
  return amount
end

local function flush_deferred()
  for target, owed in pairs(deferred) do
    for field, amount in pairs(owed) do
      if amount ~= 0 then redis.call('HINCRBYFLOAT', target, field, amount) end
    end
  end
  deferred = {}
end

-- The shortest decimal text that reads back as exactly x (at most 17 significant digits).
local function exact_text(x)
  for digits = 15, 16 do
    local text = string.format('%.' .. digits .. 'g', x)
    if tonumber(text) == x then return text end
  end
  return string.format('%.17g', x)
end

-- What one event adds to a total: its value, or 1 when it has none.
local function event_value(value)
  if value == '' then return 1 end
  return tonumber(value)
end
