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

-- The user's daily totals of one event name live in one field of the user state, the first 4 bytes of the name's
-- SHA-1 (splitstream/keys.py daily_totals_field: 4 bytes per name in every user's state, however long the name):
-- "{day}:{sum},{count}" entries joined by ";", the newest day first (days since the epoch, UTC, by the event's own
-- timestamp; the sum with every digit of the double). The newest first makes the common update, another event of
-- the latest day, a match at the start of the text.
local totals_fields = {}
local function totals_field(name)
  local field = totals_fields[name]
  if field == nil then
    field = hex_bytes(string.sub(redis.sha1hex(name), 1, 8))
    totals_fields[name] = field
  end
  return field
end

local function day_entry(day, sum, count) return day .. ':' .. exact_text(sum) .. ',' .. count end

-- The entries after adding v on day, without days before oldest_day; nil when nothing changes (a value that would
-- take a sum out of the float range is counted in overflow instead).
local function with_event(raw, day, v, oldest_day)
  if raw then
    local first_day, sum, count, rest = string.match(raw, '^(%d+):([^,;]+),(%d+)(.*)$')
    if tonumber(first_day) == day then
      local total = tonumber(sum) + v
      if not finite(total) then return nil end
      return day_entry(day, total, tonumber(count) + 1) .. rest
    end
  end
  local entries, placed = {}, false
  for entry_day, sum, count in string.gmatch(raw or '', '(%d+):([^,;]+),(%d+)') do
    local d = tonumber(entry_day)
    if not placed and d <= day then
      placed = true
      if d == day then
        local total = tonumber(sum) + v
        if not finite(total) then return nil end
        table.insert(entries, day_entry(day, total, tonumber(count) + 1))
      else
        table.insert(entries, day_entry(day, v, 1))
      end
    end
    if d ~= day and d >= oldest_day then table.insert(entries, entry_day .. ':' .. sum .. ',' .. count) end
  end
  if not placed then table.insert(entries, day_entry(day, v, 1)) end
  return table.concat(entries, ';')
end

-- Adds an event to the user's daily totals of its name. A new field keeps the state for as long as a day can be
-- looked back to; a field's old days go whenever it gains a day.
local function record_daily_total(user, name, value, happened_at, arrived_at)
  local day = math.floor(happened_at / MS_PER_DAY)
  local v = event_value(value)
  local oldest_day = math.floor(arrived_at / MS_PER_DAY) - covariate_days_kept - 1
  if day < oldest_day or not v then return end
  local state = state_of(user)
  local field = totals_field(name)
  local raw = read_fields(state.key, {field})[1]
  local updated = with_event(raw or nil, day, v, oldest_day)
  if updated == nil then
    overflow = overflow + 1
    return
  end
  write_field(state.key, field, updated)
  keep_for(state, (covariate_days_kept + 2) * SECONDS_PER_DAY)
  if not raw then field_added(state, arrived_at) end
end

-- x of each binomial and mean metric for a user first exposed at exposed_at (see the header), with Σx and Σx² added
-- to the variant's statistics and segments.
local function enter_covariates(experiment, user, user_record, variant, exposed_at)
  local plan = covariate_plan_of(experiment)
  if #plan.metrics == 0 then return end
  local exposure_day = math.floor(exposed_at / MS_PER_DAY)
  local first_day = exposure_day - plan.lookback
  local names = {}
  for index, metric in ipairs(plan.metrics) do names[index] = totals_field(metric.event) end
  local stored = read_fields(user_state_key(user), names)
  local totals = {}
  for index, metric in ipairs(plan.metrics) do
    local event_totals = totals[metric.event]
    if event_totals == nil then
      event_totals = {sum = 0, count = 0}
      for entry_day, sum, count in string.gmatch(stored[index] or '', '(%d+):([^,;]+),(%d+)') do
        local d = tonumber(entry_day)
        if d >= first_day and d < exposure_day then
          event_totals.sum = event_totals.sum + tonumber(sum)
          event_totals.count = event_totals.count + tonumber(count)
        end
      end
      totals[metric.event] = event_totals
    end
    local x = event_totals.sum
    if metric.type == 'binomial' then
      x = event_totals.count > 0 and 1 or 0
    elseif metric.cap then
      x = math.min(x, metric.cap)
    end
    local names = names_of(metric.key)
    if x ~= 0 and add_to_stats(experiment, user_record, variant, {{names.xsum, x}, {names.xsumsq, x * x}}) then
      write_field(user_record, names.x, x)
    end
  end
end
