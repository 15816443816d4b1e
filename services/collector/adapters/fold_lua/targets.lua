-- fold.lua, part 4 of 7: where a user's updates go (variant and segments) and which events count for which metric.

-- The user-record field of a segment dimension.
local segment_fields = {}
local function segment_field(dimension)
  local field = segment_fields[dimension]
  if field == nil then
    field = 's:' .. dimension
    segment_fields[dimension] = field
  end
  return field
end

-- The hashes one update of an exposed user goes to: the variant's, and the variant's in each of the user's segments.
-- Without segments that is the variant's alone, the same list for every user (built once per call).
local variant_only = {}
local function stats_targets(experiment, user_record, variant)
  local key = variant_key(experiment, variant)
  local dimensions = dimensions_of(experiment)
  if #dimensions == 0 then
    local targets = variant_only[key]
    if targets == nil then
      targets = {key}
      variant_only[key] = targets
    end
    return targets
  end
  local targets = {key}
  local values = record_values(user_record)
  for _, dimension in ipairs(dimensions) do
    local value = values[segment_field(dimension)]
    if value then targets[#targets + 1] = segment_key(experiment, dimension, value, variant) end
  end
  return targets
end

-- Puts a newly exposed user in a segment of each dimension, from the exposure's attributes.
local function enter_segments(experiment, user_record, variant, attributes_json)
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
      -- Control characters would break the user's record apart (prelude: RECORD_SEPARATOR).
      value = (string.gsub(string.sub(raw, 1, 64), '%c', '?'))
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
    write_field(user_record, segment_field(dimension), value)
    add_sum(segment_key(experiment, dimension, value, variant), 'users', 1)
  end
end

local caps_of = metric_numbers('cap')
local window_hours_of = metric_numbers('conversion_window_hours')

-- Whether an event at happened_at falls in the attribution window of the target's metric from an exposure at
-- exposed_at, before the experiment ended.
local function attributed(target, exposed_at, happened_at)
  local ended_at = ended_at_of(target.experiment)
  if happened_at < exposed_at or (ended_at and happened_at >= ended_at) then
    return false
  end
  local hours = target.window_hours
  return hours == nil or happened_at < exposed_at + hours * MS_PER_HOUR
end

-- The user-record fields an event of ``role`` moving a metric (``names``: names_of) reads: the part it moves, then
-- the other number the update multiplies by (a ratio's other part, else the CUPED covariate).
local function user_fields(names, role)
  if string.sub(role, 1, 12) == 'denominator-' then return names.d, names.m end
  return names.m, role == 'ratio' and names.d or names.x
end

-- Entries "experiment|metric|role" of the metric index (role: splitstream.experiment.Metric.feeds), each parsed into
-- a target holding what folding an event into it needs of the definition: field names, the denominator's aggregate,
-- a mean's cap, the attribution window. The list's ``daily`` says whether the name feeds a binomial or mean metric
-- (its events then add to the users' daily totals, for CUPED).
-- The entries come with the call when it has them (given_index), else from Redis. A call in mode "experiments"
-- folds the targets of its own experiment alone (any phase's scope).
local function index_entries(name)
  if not given_index then return redis.call('SMEMBERS', event_metrics_key(name)) end
  local entries = {}
  for entry in string.gmatch(given_index[name] or '', '[^\n]+') do entries[#entries + 1] = entry end
  return entries
end

-- Whether this call folds into a stats scope: every one in mode "all", its own experiment's in mode "experiments",
-- none in modes "decide" and "record" (they read only the user's state: of the entries, only ``daily``).
local function folds_into(scope)
  if mode == 'all' then return true end
  return mode == 'experiments' and string.match(scope, '^[^~]+') == call_experiment
end

local metric_indexes = {}
local function metrics_fed_by(name)
  local cached = metric_indexes[name]
  if cached == nil then
    cached = {daily = false}
    for _, entry in ipairs(index_entries(name)) do
      local experiment, metric, role = string.match(entry, '^([^|]+)|([^|]+)|([^|]+)$')
      if role == 'binomial' or role == 'mean' then cached.daily = true end
      if experiment and folds_into(experiment) then
        local names = names_of(metric)
        local target = {
          experiment = experiment, metric = metric, role = role, names = names,
          aggregate = string.match(role, '^denominator%-(%a+)$'), window_hours = window_hours_of(experiment)[metric],
          cap = role == 'mean' and caps_of(experiment)[metric] or nil,
        }
        target.own, target.other = user_fields(names, role)
        table.insert(cached, target)
      end
    end
    metric_indexes[name] = cached
  end
  return cached
end
