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

-- Adds an event to the user's total of its name on its day. A new field keeps the state for as long as a day can
-- be looked back to; the state's sweeps drop the days past that.
local function record_daily_total(user, name, amount, happened_at, arrived_at)
  local day = math.floor(happened_at / MS_PER_DAY)
  local oldest_day = math.floor(arrived_at / MS_PER_DAY) - covariate_days_kept - 1
  if day < oldest_day or not amount then return end
  local state = state_of(user)
  local field = totals_field(name, day)
  local raw = read_field(state.key, field)
  local total = (raw and tonumber(raw) or 0) + amount
  if not finite(total) then
    overflow = overflow + 1
    return
  end
  write_field(state.key, field, total)
  keep_for(state, (covariate_days_kept + 2) * SECONDS_PER_DAY)
  if not raw then
    state.totals_added = true
    field_added(state, arrived_at)
  end
end

-- For the event names a plan reads: a table of daily totals per name (filled by the caller, day -> text), the
-- sums to come, and the names by their 4 bytes of daily-total field.
local function plan_tables(plan)
  local daily, totals, by_name = {}, {}, {}
  for _, metric in ipairs(plan.metrics) do
    daily[metric.event] = {}
    totals[metric.event] = {sum = 0, days = 0}
    by_name[totals_name(metric.event)] = metric.event
  end
  return daily, totals, by_name
end

-- The sums and the number of days with events over the days [first_day, exposure_day), added day by day in order:
-- the same double however the fields were read.
local function sum_days(daily, totals, first_day, exposure_day)
  for event, event_totals in pairs(totals) do
    for day = first_day, exposure_day - 1 do
      local value = daily[event][day]
      if value then
        event_totals.sum = event_totals.sum + tonumber(value)
        event_totals.days = event_totals.days + 1
      end
    end
  end
  return totals
end

-- The sums and the number of days with events of each event name the plan reads (sum_days); nil when the user has
-- no daily totals (a state new in this call that this call added none to). A state new in this call holds only
-- what this call added; a small one is read whole (one pass, in Redis, over its fields) rather than field by field
-- (each a pass over a listpack of that size).
local function lookback_totals(user, plan, first_day, exposure_day)
  local state = state_of(user)
  if state.new and not state.totals_added then return nil end
  local daily, totals, by_name = plan_tables(plan)
  local events = {}
  for event in pairs(daily) do table.insert(events, event) end
  if state.size <= 2 * plan.lookback * #events then
    flush_copy(state.key) -- this call's additions, then the whole state, from Redis
    local flat = redis.call('HGETALL', state.key)
    for index = 1, #flat, 2 do
      local field = flat[index]
      local event = #field == DAILY_TOTAL_FIELD_BYTES and by_name[string.sub(field, 1, 4)]
      if event then daily[event][totals_day(field)] = flat[index + 1] end
    end
  else
    local fields, owners = {}, {}
    for _, event in ipairs(events) do
      for day = first_day, exposure_day - 1 do
        table.insert(fields, totals_field(event, day))
        table.insert(owners, {event, day})
      end
    end
    for index, value in ipairs(read_fields(state.key, fields)) do
      if value then daily[owners[index][1]][owners[index][2]] = value end
    end
  end
  return sum_days(daily, totals, first_day, exposure_day)
end

-- Mode "decide": every daily total of the user over the covariate_days_kept days before exposure_day, as of this
-- point of the call (this call's additions included, none written), as one text: per field its 6 bytes, then its
-- value and a newline. Mode "experiments" reads it back (snapshot_totals) where it cannot read the user's state.
local function daily_totals_text(user, exposure_day)
  local state = state_of(user)
  if state.new and not state.totals_added then return '' end
  local values = {}
  if not state.new then
    local flat = redis.call('HGETALL', state.key)
    for index = 1, #flat, 2 do
      if #flat[index] == DAILY_TOTAL_FIELD_BYTES then values[flat[index]] = flat[index + 1] end
    end
  end
  local copy = copies[state.key]
  for field, value in pairs(copy and copy.values or {}) do
    if value and #field == DAILY_TOTAL_FIELD_BYTES then
      values[field] = type(value) == 'number' and exact_text(value) or value
    end
  end
  local parts, first_day = {}, exposure_day - covariate_days_kept
  for field, value in pairs(values) do
    local day = totals_day(field)
    if day >= first_day and day < exposure_day then parts[#parts + 1] = field .. value .. '\n' end
  end
  return table.concat(parts)
end

-- lookback_totals from a text of daily_totals_text.
local function snapshot_totals(snapshot, plan, first_day, exposure_day)
  if snapshot == '' then return nil end
  local daily, totals, by_name = plan_tables(plan)
  local position = 1
  while position <= #snapshot do
    local line_end = string.find(snapshot, '\n', position + DAILY_TOTAL_FIELD_BYTES, true)
    local event = by_name[string.sub(snapshot, position, position + 3)]
    if event then
      local day = totals_day(string.sub(snapshot, position, position + DAILY_TOTAL_FIELD_BYTES - 1))
      daily[event][day] = string.sub(snapshot, position + DAILY_TOTAL_FIELD_BYTES, line_end - 1)
    end
    position = line_end + 1
  end
  return sum_days(daily, totals, first_day, exposure_day)
end

-- x of each binomial and mean metric for a user first exposed at exposed_at (see the header), with Σx and Σx² added
-- to the variant's statistics and segments.
local function enter_covariates(experiment, user, user_record, variant, exposed_at, snapshot)
  local plan = covariate_plan_of(experiment)
  if #plan.metrics == 0 then return end
  local exposure_day = math.floor(exposed_at / MS_PER_DAY)
  local totals
  if snapshot then -- mode "experiments": the user's daily totals came with the call
    totals = snapshot_totals(snapshot, plan, exposure_day - plan.lookback, exposure_day)
  else
    totals = lookback_totals(user, plan, exposure_day - plan.lookback, exposure_day)
  end
  if totals == nil then return end -- no daily totals: every x is 0
  for _, metric in ipairs(plan.metrics) do
    local sum, days = totals[metric.event].sum, totals[metric.event].days
    local x = sum
    if metric.type == 'binomial' then
      x = days > 0 and 1 or 0
    elseif metric.cap then
      x = math.min(x, metric.cap)
    end
    local names = names_of(metric.key)
    if x ~= 0 and add_to_stats(experiment, user_record, variant, names.xsum, x, names.xsumsq, x * x) then
      write_field(user_record, names.x, x)
    end
  end
end
