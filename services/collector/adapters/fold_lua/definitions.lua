-- fold.lua, part 2 of 6 (services/collector/adapters/fold.py joins them): what the definitions say, cached per call.

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
