-- fold.lua, part 3 of 7: each user's state shared by all experiments, one hash: dedup marks (mark -> hour of
-- arrival) and daily totals (event name -> "{day}:{sum},{count};...", the covariates part keeps them).

-- What this call knows of each user state it touched, read once: the key, its field count and its time to live.
-- The whole call happens at one instant and nothing else runs meanwhile, so both stay exact as this call writes.
local user_states = {}
local function state_of(user)
  local state = user_states[user]
  if state == nil then
    local key = user_state_key(user)
    state = {key = key, size = redis.call('HLEN', key), ttl = redis.call('TTL', key)}
    user_states[user] = state
  end
  return state
end

-- Keeps the state at least ttl seconds from now (TTL is -1 without an expiry, -2 before the key existed).
local function keep_for(state, ttl)
  if state.ttl < ttl then
    redis.call('EXPIRE', state.key, ttl)
    state.ttl = ttl
  end
end

-- Counts a field just added. Whenever the state reaches a multiple of PRUNE_EVERY fields, it is swept: marks whose
-- whole hour of arrival lies more than dedup_ttl before now, and the daily totals of an event whose newest day no
-- lookback can reach any more, are dropped. The count grows the same way however the events were batched, so sweeps
-- happen at the same events; every event adds a mark, so a user's state is swept at least every PRUNE_EVERY events.
local function field_added(state, now_ms)
  state.size = state.size + 1
  if state.size % PRUNE_EVERY ~= 0 then return end
  local marks_before = now_ms - dedup_ttl * 1000
  local oldest_day = math.floor(now_ms / MS_PER_DAY) - covariate_days_kept - 1
  local fields = redis.call('HGETALL', state.key)
  for index = 1, #fields, 2 do
    local field, value = fields[index], fields[index + 1]
    local stale
    if string.find(value, ':', 1, true) then
      stale = (tonumber(string.match(value, '^(%d+):') or '') or oldest_day) < oldest_day
    else
      stale = ((tonumber(value) or math.huge) + 1) * MS_PER_HOUR <= marks_before
    end
    if stale then redis.call('HDEL', state.key, field) end
  end
  state.size = redis.call('HLEN', state.key)
end

-- Marks the user's event as applied; false if it already was (a redelivery or a resend). One hash of marks per
-- user takes far less memory than a key per event. Each mark lives at least dedup_ttl: the state lasts at least
-- dedup_ttl after the user's last event, and sweeps drop only marks older than that.
local function first_delivery(user, mark, arrived_at)
  local state = state_of(user)
  if redis.call('HSETNX', state.key, mark, math.floor(arrived_at / MS_PER_HOUR)) == 0 then
    return false
  end
  keep_for(state, dedup_ttl)
  field_added(state, arrived_at)
  return true
end
