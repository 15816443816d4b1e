-- fold.lua, part 3 of 7: each user's state shared by all experiments, one hash: dedup marks (8-byte mark -> day of
-- arrival modulo MARK_DAYS) and daily totals (6-byte field of event name and day -> sum, the covariates part keeps
-- them). States written before kept marks' hours of arrival (numbers from MARK_DAYS up) and an event name's days in
-- one field ("{day}:{sum},{count};..."); the sweep still reads both.

-- The user's total of one event name on one day is one field of the user state: the first 4 bytes of the name's
-- SHA-1 and the day in 2 bytes, big-endian (days since the epoch, UTC, by the event's own timestamp); the value is
-- the sum with every digit of the double (splitstream/keys.py daily_totals_field: 6 bytes, however long the name).
-- A day without events has no field, so a binomial covariate is whether any field of the lookback exists.
local DAILY_TOTAL_FIELD_BYTES = 6
local name_bytes = {}
local function totals_name(name)
  local bytes = name_bytes[name]
  if bytes == nil then
    bytes = hex_bytes(string.sub(redis.sha1hex(name), 1, 8))
    name_bytes[name] = bytes
  end
  return bytes
end

local day_fields = {}
local function totals_field(name, day)
  local fields = table_in(day_fields, name)
  local field = fields[day]
  if field == nil then
    field = totals_name(name) .. string.char(math.floor(day / 256) % 256, day % 256)
    fields[day] = field
  end
  return field
end

-- The day of a daily-total field (the sweep drops the days no lookback can reach).
local function totals_day(field)
  local high, low = string.byte(field, 5, 6)
  return high * 256 + low
end

-- What this call knows of each user state it touched: the key, its field count (read once, then counted here: the
-- call happens at one instant and nothing else runs meanwhile), whether it was new, and the longest time to live an
-- event asked for, set once per call (keep_user_states). The daily totals are read and written through the call's
-- copy of the hash (prelude); the marks go to Redis at once (HSETNX checks and sets in one command, which costs
-- less than keeping them in the copy).
local user_states = {}
local function state_of(user)
  local state = user_states[user]
  if state == nil then
    local key = user_state_key(user)
    local size = redis.call('HLEN', key)
    state = {key = key, size = size, new = size == 0, keep = 0, totals_added = false}
    user_states[user] = state
    if state.new then start_copy(key) end -- no daily total to read: the call's copy knows them all
  end
  return state
end

-- Keeps the state at least ttl seconds from the call's end.
local function keep_for(state, ttl)
  if ttl > state.keep then state.keep = ttl end
end

-- Every state the call wrote to lives at least as long as its events asked for: a new one gets that time to live,
-- an older one (it always has one: every call that writes a state sets it) is only ever lengthened (GT).
local function keep_user_states()
  for _, state in pairs(user_states) do
    if state.keep > 0 then
      if state.new then
        redis.call('EXPIRE', state.key, state.keep)
      else
        redis.call('EXPIRE', state.key, state.keep, 'GT')
      end
    end
  end
end

-- A mark's value is the day of arrival modulo MARK_DAYS: a number a listpack keeps in one byte. Its age is read
-- modulo MARK_DAYS too, so it is never taken for older than it is: a mark is dropped only once its whole day of
-- arrival lies more than dedup_ttl before now (with a dedup window of MARK_DAYS - 2 days or more, never).
local MARK_DAYS = 128
local mark_values = {}
local function mark_value(arrived_at)
  local day = math.floor(arrived_at / MS_PER_DAY)
  local value = mark_values[day]
  if value == nil then
    value = string.format('%d', day % MARK_DAYS)
    mark_values[day] = value
  end
  return value
end

local function stale_mark(value, now_ms, marks_before)
  local number = tonumber(value)
  if number == nil then return false end
  if number >= MARK_DAYS then return (number + 1) * MS_PER_HOUR <= marks_before end -- an hour of arrival
  local today = math.floor(now_ms / MS_PER_DAY)
  local day = today - (today - number) % MARK_DAYS
  return (day + 1) * MS_PER_DAY <= marks_before
end

-- Counts a field just added and sweeps the state when it has grown enough: marks whose whole day of arrival lies
-- more than dedup_ttl before now, and the daily totals of days no lookback can reach any more, are dropped. A sweep
-- is considered at every multiple of PRUNE_EVERY fields and happens once the state has reached twice its size after
-- the previous sweep (field SWEEP_FIELD), so a user with many live marks costs a bounded number of field reads per
-- event, not a read of every mark every PRUNE_EVERY events; the state holds at most about twice its live fields, or
-- PRUNE_EVERY more. The count grows the same way however the events were batched, so sweeps happen at the same
-- events.
local function field_added(state, now_ms)
  state.size = state.size + 1
  if state.size % PRUNE_EVERY ~= 0 or mode == 'decide' then return end -- deciding writes nothing
  if state.size < (tonumber(redis.call('HGET', state.key, SWEEP_FIELD)) or 0) then return end
  flush_copy(state.key) -- the sweep reads and deletes in Redis itself
  local marks_before = now_ms - dedup_ttl * 1000
  local oldest_day = math.floor(now_ms / MS_PER_DAY) - covariate_days_kept - 1
  local fields = redis.call('HGETALL', state.key)
  for index = 1, #fields, 2 do
    local field, value = fields[index], fields[index + 1]
    local stale = false
    if string.find(value, ':', 1, true) then -- an event name's days in one field, newest first
      stale = (tonumber(string.match(value, '^(%d+):') or '') or oldest_day) < oldest_day
    elseif #field == DAILY_TOTAL_FIELD_BYTES then
      stale = totals_day(field) < oldest_day
    elseif field ~= SWEEP_FIELD then
      stale = stale_mark(value, now_ms, marks_before)
    end
    if stale then redis.call('HDEL', state.key, field) end
  end
  local kept = redis.call('HLEN', state.key)
  redis.call('HSET', state.key, SWEEP_FIELD, 2 * kept)
  state.size = redis.call('HLEN', state.key)
end

-- Marks the user's event as applied; false if it already was (a redelivery or a resend). One hash of marks per
-- user takes far less memory than a key per event. Each mark lives at least dedup_ttl: the state lasts at least
-- dedup_ttl after the user's last event, and sweeps drop only marks older than that.
local marks_decided = {}
local function first_delivery(user, mark, arrived_at)
  local state = state_of(user)
  if mode == 'decide' then -- as HSETNX would answer, writing nothing (the call in mode "record" writes the marks)
    local decided = table_in(marks_decided, user)
    if decided[mark] or (not state.new and redis.call('HEXISTS', state.key, mark) == 1) then return false end
    decided[mark] = true
    return true
  end
  if redis.call('HSETNX', state.key, mark, mark_value(arrived_at)) == 0 then
    return false
  end
  keep_for(state, dedup_ttl)
  field_added(state, arrived_at)
  return true
end
