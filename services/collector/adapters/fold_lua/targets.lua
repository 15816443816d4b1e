-- fold.lua, part 4 of 7: where a user's updates go (variant and segments) and which events count for which metric.

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
  local fields = {}
  for index, dimension in ipairs(dimensions) do fields[index] = 's:' .. dimension end
  local values = read_fields(user_record, fields)
  for index, dimension in ipairs(dimensions) do
    if values[index] then table.insert(targets, segment_key(experiment, dimension, values[index], variant)) end
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
    write_field(user_record, 's:' .. dimension, value)
    add_sum(segment_key(experiment, dimension, value, variant), 'users', 1)
  end
end

local caps_of = metric_numbers('cap')
local window_hours_of = metric_numbers('conversion_window_hours')

-- Whether an event at happened_at falls in the metric's attribution window of an exposure at exposed_at, before the
-- experiment ended.
local function attributed(experiment, metric, exposed_at, happened_at)
  local ended_at = ended_at_of(experiment)
  if happened_at < exposed_at or (ended_at and happened_at >= ended_at) then
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
