-- fold.lua, part 5 of 7: the per-user updates of the sufficient statistics (binomial, mean, ratio).

-- Adds each {field, delta} of increments to the variant's statistics and to its segments' among the user's, or none
-- of them: a delta that is not finite, or that would take the variant's sum past the float range, skips the whole
-- update (counted in overflow, and the caller leaves the user's totals as they were). Returns whether it applied.
local function add_to_stats(experiment, user_record, variant, increments)
  local sums = sums_of(variant_key(experiment, variant))
  for _, increment in ipairs(increments) do
    if not (finite(increment[2]) and finite((sums[increment[1]] or 0) + increment[2])) then
      overflow = overflow + 1
      return false
    end
  end
  for _, target in ipairs(stats_targets(experiment, user_record, variant)) do
    for _, increment in ipairs(increments) do
      if increment[2] ~= 0 then add_sum(target, increment[1], increment[2]) end
    end
  end
  return true
end

-- Adds one event to one exposed user's y (binomial, mean) or ratio numerator m. Binomial: y = 1 once the user
-- converts (at most once). Mean and ratio: the user's raw running total T is kept in the user record and y = T, or,
-- with a mean metric's cap c, the winsorized y = min(T, c) (from above only: negative totals stay). On
-- T_old -> T_new, Σy gains y(T_new) − y(T_old) and Σy² gains y(T_new)² − y(T_old)², so both stay sums over users
-- of their (capped) totals; Σx·y gains x·Δy and a ratio's Σm·d gains Δm·d.
local function fold_value(experiment, user_record, variant, metric, metric_type, value, own, other_raw)
  local names = names_of(metric)
  local other = tonumber(other_raw or '0')
  local old, new, y_old, y_new
  if metric_type == 'binomial' then
    if own then return end
    old, new, y_old, y_new = 0, 1, 0, 1
  else
    old = tonumber(own or '0')
    new = old + event_value(value)
    y_old, y_new = old, new
    local cap = metric_type == 'mean' and caps_of(experiment)[metric]
    if cap then y_old, y_new = math.min(old, cap), math.min(new, cap) end
  end
  local delta = y_new - y_old
  local increments = {{names.sum, delta}, {names.sumsq, y_new * y_new - y_old * y_old}}
  if metric_type == 'ratio' then
    increments[3] = {names.md, delta * other}
  elseif other ~= 0 then
    increments[3] = {names.xy, other * delta}
  end
  if finite(new) and add_to_stats(experiment, user_record, variant, increments) then
    write_field(user_record, names.m, new)
  end
end

-- Adds one event to one exposed user's ratio denominator d: 1 (count), or the event's value (sum).
local function fold_denominator(experiment, user_record, variant, metric, aggregate, value, own, numerator)
  local step = 1
  if aggregate == 'sum' then step = event_value(value) end
  local names = names_of(metric)
  local old = tonumber(own or '0')
  local new = old + step
  local increments = {
    {names.dsum, step}, {names.dsumsq, new * new - old * old}, {names.md, tonumber(numerator or '0') * step},
  }
  if finite(new) and add_to_stats(experiment, user_record, variant, increments) then
    write_field(user_record, names.d, new)
  end
end

-- The user-hash fields an event of ``role`` moving ``metric`` reads: the part it moves, then the other number the
-- update multiplies by (a ratio's other part, else the CUPED covariate). Callers read them with the exposure.
local function user_fields(metric, role)
  local names = names_of(metric)
  if string.sub(role, 1, 12) == 'denominator-' then return names.d, names.m end
  return names.m, role == 'ratio' and names.d or names.x
end

-- Adds one event to one exposed user's metric; ``own`` and ``other`` are the stored values of ``user_fields``.
local function fold(experiment, user_record, variant, metric, role, value, own, other)
  local aggregate = string.match(role, '^denominator%-(%a+)$')
  if aggregate then
    fold_denominator(experiment, user_record, variant, metric, aggregate, value, own, other)
  elseif role == 'binomial' or role == 'mean' or role == 'ratio' then
    fold_value(experiment, user_record, variant, metric, role, value, own, other)
  end
end
