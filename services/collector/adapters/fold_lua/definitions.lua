-- fold.lua, part 2 of 7 (services/collector/adapters/fold.py joins them): what the definitions say, cached per call.

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

-- Epoch milliseconds of a UTC time as pydantic writes it ("2026-11-23T18:20:01.123456Z"), else nil. Days from the
-- civil date by H. Hinnant's algorithm (proleptic Gregorian calendar, March-based years).
local function epoch_ms(text)
  if type(text) ~= 'string' then return nil end
  local y, m, d, hour, minute, second, fraction, zone =
    string.match(text, '^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)(%.?%d*)(.*)$')
  if not y or (zone ~= 'Z' and zone ~= '+00:00') then return nil end
  y, m = tonumber(y), tonumber(m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local year_of_era = y - era * 400
  local day_of_year = math.floor((153 * ((m + 9) % 12) + 2) / 5) + tonumber(d) - 1
  local day_of_era = year_of_era * 365 + math.floor(year_of_era / 4) - math.floor(year_of_era / 100) + day_of_year
  local days = era * 146097 + day_of_era - 719468
  local ms = math.floor((tonumber('0' .. fraction) or 0) * 1000)
  return ((days * 24 + tonumber(hour)) * 60 + tonumber(minute)) * 60000 + tonumber(second) * 1000 + ms
end

-- When the experiment ended (stopped or shipped), epoch ms, or false while it runs: nothing from then on counts.
local end_times = {}
local function ended_at_of(experiment)
  local cached = end_times[experiment]
  if cached == nil then
    local definition = definition_of(experiment)
    cached = definition and epoch_ms(definition.ended_at) or false
    end_times[experiment] = cached
  end
  return cached
end
