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
-- whichever arrives first. An event that arrives before the exposure waits in the experiment's pending list of the
-- user (with its arrival time) and is replayed when the exposure arrives only if
-- event_arrived >= exposure_arrived - lateness.
--
-- Ratio metrics (role "ratio" for the numerator event, "denominator-count" / "denominator-sum" for the denominator
-- event): the user's numerator total m and denominator total d live in the user record (m:{metric}, d:{metric}); the
-- variant keeps Σm, Σm² ({metric}:sum, :sumsq), Σd, Σd² (:dsum, :dsumsq) and Σm·d (:md). When one part moves, the
-- cross product moves by the change times the other part: Σm·d += Δm·d, or m·Δd.
--
-- CUPED covariates (binomial and mean metrics): every event whose name feeds such a metric also adds to the user's
-- daily totals (in the user state {p}:user:{<user>}, a 6-byte field per event name and day holding Σ values; days
-- since the epoch, UTC, by the event's own timestamp), kept covariate_days_kept days. At the user's first exposure,
-- x for each metric is the same metric over the cuped_lookback_days whole days before the exposure's day (binomial:
-- 1 if any event, mean: the total, capped like y), frozen from then on; the variant keeps Σx, Σx², Σx·y (:xsum,
-- :xsumsq, :xy) and the user x:{metric} when x is not 0. Pre-period events that arrive after the exposure was folded
-- are not in x.
--
-- Segments: for each dimension the definition lists in "segments", the first exposure's attribute value (text,
-- "(none)" when absent, at most 64 characters) puts the user in that value's segment; a dimension keeps at most
-- max_segment_values values, later ones fold into "(other)". Each segment has the variant hashes of the main
-- statistics ({p}:exp:[scope]:seg:{dim}:{value}:v:{variant}), updated together with them; the values of a
-- dimension are the set {p}:exp:[scope]:segvals:{dim}. ([scope]: the tagged scope, splitstream/keys.py.)
--
-- ARGV: prefix, dedup_ttl, pending_ttl, pending_max, lateness_ms, poison_count, max_segment_values,
-- covariate_days_kept, mode, the experiment key of the call (mode "experiments"; "" otherwise), the number of
-- metric index entries given (-1: the script reads the index itself), each given as its event name and its entries
-- joined by newlines, then 9 fields per event, in record order (arrived_ms: when the event reached the platform,
-- epoch ms), and in mode "experiments" two more: the record ("partition:offset") and, for an exposure, the user's
-- daily totals (apply.lua: modes):
--   exposure: "exposure", mark, user_id, place, stats scope (experiment and phase), variant, ts_ms, arrived_ms,
--             attributes (a JSON object, "" when none)
--   event:    "event",    mark, user_id, place, name, value ("" when absent), ts_ms, arrived_ms, ""
-- mark: the event's dedup mark (splitstream/keys.py dedup_mark: 8 bytes of a hash of its event id); place: where
-- the user's records are (splitstream/keys.py user_place_bytes: the first 10 bytes of the user id's SHA-1).
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
local mode = ARGV[9]
local call_experiment = ARGV[10]
local given_index = nil
local FIRST_EVENT = 12
if tonumber(ARGV[11]) >= 0 then
  given_index = {}
  for index = 12, 11 + 2 * tonumber(ARGV[11]), 2 do given_index[ARGV[index]] = ARGV[index + 1] end
  FIRST_EVENT = 12 + 2 * tonumber(ARGV[11])
end
local FIELDS_PER_EVENT = mode == 'experiments' and 11 or 9
local OTHER_VALUES = '(other)'
local NO_VALUE = '(none)'
-- The arm of held-out users (splitstream/experiment.py HOLDOUT_ARM): folded like a variant of every experiment.
local HOLDOUT_ARM = '(holdout)'
local MS_PER_HOUR = 3600000
local PRUNE_EVERY = 64
-- The user state's field holding the size at which its next sweep happens (no 6-byte totals field or 8-byte mark is
-- "~").
local SWEEP_FIELD = '~'
local MS_PER_DAY = 86400000
local SECONDS_PER_DAY = 86400
local DEFAULT_LOOKBACK_DAYS = 14

local applied, duplicates, orphans, overflow = 0, 0, 0, 0

-- The table under key in tables, made on first use: per-call caches keyed by two strings nest, since joining the
-- strings into one key would make a new string at every lookup.
local function table_in(tables, key)
  local inner = tables[key]
  if inner == nil then
    inner = {}
    tables[key] = inner
  end
  return inner
end

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
  local keys = table_in(variant_keys, experiment)
  local cached = keys[variant]
  if cached == nil then
    cached = scope_key(experiment) .. ':v:' .. variant
    keys[variant] = cached
  end
  return cached
end
-- The user's state shared by all experiments (dedup marks and daily totals, one hash), tagged by the user id.
local function user_state_key(user) return prefix .. ':user:{' .. user .. '}' end
-- The user's events that wait in a stats scope for the user's first exposure there: in the scope's slot, so that an
-- exposure and the events it replays are folded from one slot.
local function pending_key(scope, user) return scope_key(scope) .. ':pending:' .. user end
-- Where events waited for any experiment before that (splitstream/keys.py legacy_pending): still read, until they
-- expire, so that none pending at an upgrade is lost.
local function legacy_pending_key(user) return user_state_key(user) .. ':pending' end
local function event_metrics_key(name) return prefix .. ':event-metrics:' .. name end
local function stats_key(counter) return prefix .. ':stats:' .. counter end
local function segment_key(scope, dimension, value, variant)
  return scope_key(scope) .. ':seg:' .. dimension .. ':' .. value .. ':v:' .. variant
end
local function segment_values_key(scope, dimension) return scope_key(scope) .. ':segvals:' .. dimension end

-- The field names of one metric in the user and statistics hashes (splitstream/keys.py), built once per call.
local metric_names = {}
local function names_of(metric)
  local names = metric_names[metric]
  if names == nil then
    names = {
      m = 'm:' .. metric, d = 'd:' .. metric, x = 'x:' .. metric, sum = metric .. ':sum', sumsq = metric .. ':sumsq',
      md = metric .. ':md', xy = metric .. ':xy', dsum = metric .. ':dsum', dsumsq = metric .. ':dsumsq',
      xsum = metric .. ':xsum', xsumsq = metric .. ':xsumsq',
    }
    metric_names[metric] = names
  end
  return names
end

local function finite(x)
  return x == x and x ~= math.huge and x ~= -math.huge
end

-- The shortest decimal text that reads back as exactly x (at most 17 significant digits). Whole numbers below 2^53,
-- most sums and totals, need no round trip; texts are kept for the call, as users' totals often repeat (prices).
local texts = {}
local function exact_text(x)
  local text = texts[x]
  if text then return text end
  if x == math.floor(x) and x > -9007199254740992 and x < 9007199254740992 then
    text = string.format('%d', x)
  else
    for digits = 15, 17 do
      text = string.format('%.' .. digits .. 'g', x)
      if tonumber(text) == x then break end
    end
  end
  if x == x then texts[x] = text end
  return text
end

-- A per-call copy of hashes this call reads and writes: each field is read at most once, every change is made to
-- the copy, and the changed fields are written with one HSET per hash when the call ends (flush). The script runs
-- atomically, so nobody sees the hash between. Hashes and fields are written in the order they first changed, so
-- the stored bytes do not depend on table iteration order.
local copies, copy_order = {}, {}
local function copy_of(key)
  local copy = copies[key]
  if copy == nil then
    copy = {values = {}, changed = {}, order = {}, fresh = false}
    copies[key] = copy
    copy_order[#copy_order + 1] = key
  end
  return copy
end

-- Exposed users: each stats scope keeps USER_BUCKETS hashes {p}:exp:[scope]:users:{bucket} (the bucket: the first
-- 12 bits of the event's place; the field: its bytes 3 to 10; splitstream/keys.py user_place), each
-- field's value the user's record, "{field}={value}" entries joined by RECORD_SEPARATOR: v (variant), t (first
-- exposure, epoch ms), then m:/d:/x:{metric} and s:{dimension} in byte order. Many users share a hash, so a user
-- costs a field of a listpack rather than a key, its object and its table entries. A record is read whole at first
-- touch and written whole at the end of the call, through a copy like any hash's, named by the bucket key, a
-- newline (never in a key) and the field.
local RECORD_SEPARATOR = '\31'
-- The bytes a text of hex digits spells.
local function hex_bytes(hex)
  return (string.gsub(hex, '..', function(pair) return string.char(tonumber(pair, 16)) end))
end

local record_names = {}
local function user_record_of(experiment, user, place)
  local names = table_in(record_names, experiment)
  local name = names[user]
  if name == nil then
    local high, low = string.byte(place, 1, 2)
    local hash = scope_key(experiment) .. ':users:' .. (high * 16 + math.floor(low / 16))
    local field = string.sub(place, 3, 10)
    name = hash .. '\n' .. field
    copy_of(name).record = {hash = hash, field = field}
    names[user] = name
  end
  return name
end

local function load_record(copy)
  local raw = redis.call('HGET', copy.record.hash, copy.record.field)
  for entry in string.gmatch(raw or '', '[^' .. RECORD_SEPARATOR .. ']+') do
    local field, value = string.match(entry, '^([^=]+)=(.*)$')
    if field then copy.values[field] = value end
  end
  copy.loaded_o = copy.values.o -- mode "experiments": the last Kafka record applied to it (apply.lua)
  copy.fresh = true
end

-- The values of a user record (nil when absent), the whole record read at first touch.
local function record_values(name)
  local copy = copies[name]
  if not copy.fresh then load_record(copy) end
  return copy.values
end

-- The user's variant and first exposure (epoch ms) in a record, or nil when the user is not exposed (yet).
local function exposure_of(name)
  local values, copy = record_values(name), copies[name]
  if copy.exposed_at == nil then copy.exposed_at = tonumber(values.t) or false end
  return values.v, copy.exposed_at or nil
end

-- v and t first, then the other fields in byte order: the text depends on the user's numbers alone, not on the
-- order metrics were updated in (an event's metrics come from a set, in no fixed order).
local function record_text(copy)
  local values, others = copy.values, {}
  for field, value in pairs(values) do
    if value and field ~= 'v' and field ~= 't' then others[#others + 1] = field end
  end
  table.sort(others)
  local parts, count = {'v=', values.v, RECORD_SEPARATOR, 't=', values.t}, 5
  for _, field in ipairs(others) do
    local value = values[field]
    parts[count + 1], parts[count + 2], parts[count + 3] = RECORD_SEPARATOR, field, '='
    parts[count + 4] = type(value) == 'number' and exact_text(value) or value
    count = count + 4
  end
  return table.concat(parts)
end

-- The values of fields (false when absent), reading the ones not known yet with one HMGET.
local function read_fields(key, fields)
  local copy = copy_of(key)
  local values = copy.values
  if not copy.fresh then
    local missing = {}
    for _, field in ipairs(fields) do
      if values[field] == nil then table.insert(missing, field) end
    end
    if #missing > 0 then
      local read = redis.call('HMGET', key, unpack(missing))
      for index, field in ipairs(missing) do values[field] = read[index] end
    end
  end
  local row = {}
  for index, field in ipairs(fields) do row[index] = values[field] or false end
  return row
end

-- The value of one field (false when absent), read from Redis unless known.
local function read_field(key, field)
  local copy = copy_of(key)
  local value = copy.values[field]
  if value == nil then
    value = not copy.fresh and redis.call('HGET', key, field) or false
    copy.values[field] = value
  end
  return value
end

-- Numbers are kept as numbers in the copy and written as exact_text at the flush. A record is written whole.
local function write_field(key, field, value)
  local copy = copy_of(key)
  if copy.record then
    copy.values[field] = value
    copy.dirty = true
    return
  end
  if not copy.changed[field] then
    copy.changed[field] = true
    copy.order[#copy.order + 1] = field
  end
  copy.values[field] = value
end

-- Records a user's first exposure in its record: the variant and the time, as text and as a number.
local function set_exposure(name, variant, ts, exposed_at)
  write_field(name, 'v', variant)
  write_field(name, 't', ts)
  copies[name].exposed_at = exposed_at
end

-- Marks a hash known not to exist: none of its fields needs reading.
local function start_copy(key)
  copy_of(key).fresh = true
end

-- The statistics hashes (variants, segments) hold sums only: read whole at first touch, each addition made to the
-- copy in double arithmetic and in event order, so what is stored depends on the events and their order alone, not
-- on how they were cut into calls.
local function sums_of(key)
  local copy = copies[key]
  if copy == nil then
    copy = copy_of(key)
    local flat = redis.call('HGETALL', key)
    for index = 1, #flat, 2 do copy.values[flat[index]] = tonumber(flat[index + 1]) or 0 end
  end
  return copy.values
end

local function add_sum(key, field, delta)
  local sums = sums_of(key)
  write_field(key, field, (sums[field] or 0) + delta)
end

-- Writes the changed fields of the call's copy of one hash and forgets the copy.
local function flush_copy(key)
  local copy = copies[key]
  if copy == nil then return end
  copies[key] = nil
  if copy.record then
    if copy.dirty then redis.call('HSET', copy.record.hash, copy.record.field, record_text(copy)) end
    return
  end
  if #copy.order == 0 then return end
  local args, values = {}, copy.values
  for index, field in ipairs(copy.order) do
    local value = values[field]
    args[2 * index - 1], args[2 * index] = field, type(value) == 'number' and exact_text(value) or value
  end
  redis.call('HSET', key, unpack(args))
end

local function flush()
  for _, key in ipairs(copy_order) do flush_copy(key) end
  copy_order = {}
end

-- What one event adds to a total: its value, or 1 when it has none.
local function event_value(value)
  if value == '' then return 1 end
  return tonumber(value)
end
