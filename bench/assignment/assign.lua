-- wrk script: POST /v1/assign bodies for one experiment (bench/assignment/wrk.py passes the arguments).
--   wrk ... -s assign.lua URL -- <experiment> <pool size> <log_exposure: true|false> <user id prefix>
-- pool size N > 0: each request's user is drawn uniformly from N ids, so first visits (sticky miss, new
-- exposure) and returning users mix as in real traffic; 0: every request is the same returning user.

local threads_started = 0

function setup(thread)
  thread:set("thread_number", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  local experiment, log_exposure = args[1], args[3]
  pool = tonumber(args[2])
  prefix = args[4]
  -- thread_number is set by setup() in this thread's own Lua state; distinct seeds give distinct user sequences.
  math.randomseed(os.time() + 7919 * thread_number)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  template = '{"user_id":"%s","attributes":{"country":"CN","device":"ios","is_new":true,"app_version":"2.3.1"},'
    .. '"experiments":["' .. experiment .. '"],"log_exposure":' .. log_exposure .. '}'
  if pool == 0 then
    fixed_request = wrk.format(nil, nil, nil, string.format(template, prefix .. "returning"))
  end
end

function request()
  if fixed_request then
    return fixed_request
  end
  return wrk.format(nil, nil, nil, string.format(template, prefix .. math.random(pool)))
end
