-- fold.lua, part 6 of 7: CUPED covariates from each user's daily totals.

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

-- Adds an event to the user's daily totals; a new day keeps the state for as long as that day can be looked back to.
local function record_daily_total(user, name, value, happened_at, arrived_at)
  local day = math.floor(happened_at / MS_PER_DAY)
  local v = event_value(value)
  if day < math.floor(arrived_at / MS_PER_DAY) - covariate_days_kept - 1 or not v then return end
  local state = state_of(user)
  local field = name .. '|' .. day
  local raw = redis.call('HGET', state.key, field)
  local sum, count = daily_total(raw)
  sum = sum + v
  if not finite(sum) then
    overflow = overflow + 1
    return
  end
  redis.call('HSET', state.key, field, exact_text(sum) .. ',' .. (count + 1))
  if not raw then
    keep_for(state, (covariate_days_kept + 2) * SECONDS_PER_DAY)
    field_added(state, arrived_at)
  end
end

-- x of each binomial and mean metric for a user first exposed at exposed_at (see the header), with Σx and Σx² added
-- to the variant's statistics and segments.
-- The daily-total fields of an event name over a lookback window, built once per call (a batch's exposures mostly
-- share a day).
local lookback_field_lists = {}
local function lookback_fields(event, first_day, last_day)
  local id = event .. '|' .. first_day .. '|' .. last_day
  local fields = lookback_field_lists[id]
  if fields == nil then
    fields = {}
    for day = first_day, last_day do
      table.insert(fields, event .. '|' .. day)
    end
    lookback_field_lists[id] = fields
  end
  return fields
end

local function enter_covariates(experiment, user, user_hash, variant, exposed_at)
  local plan = covariate_plan_of(experiment)
  local key = user_state_key(user)
  if #plan.metrics == 0 then return end
  local exposure_day = math.floor(exposed_at / MS_PER_DAY)
  local totals = {}
  for _, metric in ipairs(plan.metrics) do
    local event_totals = totals[metric.event]
    if event_totals == nil then
      local fields = lookback_fields(metric.event, exposure_day - plan.lookback, exposure_day - 1)
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
