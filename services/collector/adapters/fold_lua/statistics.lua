-- fold.lua, part 5 of 7: the per-user updates of the sufficient statistics (binomial, mean, ratio).

-- Adds up to three increments (field, delta; the third pair may be nil) to the variant's statistics and to its
-- segments' among the user's, or none of them: a delta that is not finite, or that would take the variant's sum past
-- the float range, skips the whole update (counted in overflow, and the caller leaves the user's totals as they
-- were). Returns whether it applied. Pairs rather than a list: this runs for every event, and a table per call
-- costs more than the update. The sums stored are finite, so a new sum is finite only if its delta is too; t - t is
-- 0 for a finite t and NaN otherwise.
local function add_to_stats(experiment, user_record, variant, field1, delta1, field2, delta2, field3, delta3)
  local sums = sums_of(variant_key(experiment, variant))
  local total1, total2 = (sums[field1] or 0) + delta1, (sums[field2] or 0) + delta2
  local total3 = field3 and (sums[field3] or 0) + delta3 or 0
  if total1 - total1 ~= 0 or total2 - total2 ~= 0 or total3 - total3 ~= 0 then
    overflow = overflow + 1
    return false
  end
  for _, target in ipairs(stats_targets(experiment, user_record, variant)) do
    if delta1 ~= 0 then add_sum(target, field1, delta1) end
    if delta2 ~= 0 then add_sum(target, field2, delta2) end
    if field3 and delta3 ~= 0 then add_sum(target, field3, delta3) end
  end
  return true
end

-- Adds one event (``amount``: event_value) to one exposed user's y (binomial, mean) or ratio numerator m.
-- Binomial: y = 1 once the user converts (at most once). Mean and ratio: the user's raw running total T is kept in
-- the user record and y = T, or, with a mean metric's cap c, the winsorized y = min(T, c) (from above only:
-- negative totals stay). On T_old -> T_new, Σy gains y(T_new) − y(T_old) and Σy² gains y(T_new)² − y(T_old)², so
-- both stay sums over users of their (capped) totals; Σx·y gains x·Δy and a ratio's Σm·d gains Δm·d.
local function fold_value(target, user_record, variant, amount, own, other_raw)
  local names = target.names
  local other = other_raw and tonumber(other_raw) or 0
  local old, new, y_old, y_new
  if target.role == 'binomial' then
    if own then return end
    old, new, y_old, y_new = 0, 1, 0, 1
  else
    old = own and tonumber(own) or 0
    new = old + amount
    y_old, y_new = old, new
    local cap = target.cap
    if cap then y_old, y_new = math.min(old, cap), math.min(new, cap) end
  end
  local delta = y_new - y_old
  local cross_field, cross_delta
  if target.role == 'ratio' then
    cross_field, cross_delta = names.md, delta * other
  elseif other ~= 0 then
    cross_field, cross_delta = names.xy, other * delta
  end
  if finite(new) and add_to_stats(target.experiment, user_record, variant, names.sum, delta,
                                  names.sumsq, y_new * y_new - y_old * y_old, cross_field, cross_delta) then
    write_field(user_record, names.m, new)
  end
end

-- Adds one event to one exposed user's ratio denominator d: 1 (count), or the event's amount (sum).
local function fold_denominator(target, user_record, variant, amount, own, numerator)
  local step = 1
  if target.aggregate == 'sum' then step = amount end
  local names = target.names
  local old = own and tonumber(own) or 0
  local new = old + step
  if finite(new) and add_to_stats(target.experiment, user_record, variant, names.dsum, step,
                                  names.dsumsq, new * new - old * old,
                                  names.md, (numerator and tonumber(numerator) or 0) * step) then
    write_field(user_record, names.d, new)
  end
end

-- Adds one event to one exposed user's metric; ``own`` and ``other`` are the record's values of the target's
-- ``own`` and ``other`` fields (metrics_fed_by).
local function fold(target, user_record, variant, amount, own, other)
  if target.aggregate then
    fold_denominator(target, user_record, variant, amount, own, other)
  elseif target.role == 'binomial' or target.role == 'mean' or target.role == 'ratio' then
    fold_value(target, user_record, variant, amount, own, other)
  end
end
