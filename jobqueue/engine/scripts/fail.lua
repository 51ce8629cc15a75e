-- fail.lua: record a failed attempt of a running job, then retry it later, or let it die.
--
-- The error (exception class path and traceback, as text) is appended to the job's errors.
-- Then, in this order:
--   cancel was requested      -> canceled
--   retry allowed (ARGV[9] >= 0) and attempts left -> scheduled at now + ARGV[9] ms
--   otherwise                 -> failed (dead): kept for the failed TTL, in the failed registry
-- Attempts left: attempts - attempts before the last manual retry - stalls < max attempts.
-- Refused, with no change, when the fence token is not the job's current one.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] scheduled   KEYS[4] failed registry
-- KEYS[5]  canceled registry   KEYS[6] events   KEYS[7] uniques   KEYS[8] job hash
-- KEYS[9]  done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] failed TTL ms
-- ARGV[5]  registry size limit   ARGV[6] local id   ARGV[7] fence token
-- ARGV[8]  error JSON {"c": class path, "tb": traceback, "n": attempt} (appended to errors)
-- ARGV[9]  retry delay ms, or -1 when this error must not be retried
-- ARGV[10] reason for a final failure ('' = none)
-- Returns  the job's new state, or '' when refused
local meta, leases, scheduled, failed, canceled, events, uniques, jkey, done =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local err = preflight(ARGV[1])
if err then return err end
local queue, maxlen, ttl, limit = ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local lid, token, error_json, delay = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local reason = ARGV[10]
if not holds_lease(jkey, token) then return '' end
local now = now_ms()

-- The error carries its time; appended to the JSON array without decoding it.
error_json = string.sub(error_json, 1, -2) .. ',"at":' .. now .. '}'
local errors = redis.call('HGET', jkey, 'errors')
if errors and string.sub(errors, -1) == ']' and string.len(errors) > 2 then
  errors = string.sub(errors, 1, -2) .. ',' .. error_json .. ']'
else
  errors = '[' .. error_json .. ']'
end
redis.call('ZREM', leases, lid)
redis.call('HDEL', jkey, 'lease')

local h = redis.call('HMGET', jkey, 'att', 'att0', 'stalls', 'max', 'cancel')
local used = (tonumber(h[1]) or 0) - (tonumber(h[2]) or 0) - (tonumber(h[3]) or 0)
local max_attempts = tonumber(h[4]) or 1
local state
local changes = {'errors', errors}
if h[5] == '1' then
  state = 'canceled'
elseif delay >= 0 and used < max_attempts then
  state = 'scheduled'
  local run_at = now + delay
  redis.call('ZADD', scheduled, run_at, lid)
  changes[#changes + 1] = 'run_at'; changes[#changes + 1] = run_at
else
  state = 'failed'
end
if state ~= 'scheduled' then
  changes[#changes + 1] = 'ended'; changes[#changes + 1] = now
  if reason ~= '' then changes[#changes + 1] = 'reason'; changes[#changes + 1] = reason end
end
redis.call('HSET', jkey, 'state', state, unpack(changes))
local v = bump_version(jkey)
if state ~= 'scheduled' then
  redis.call('HDEL', jkey, 'cancel')
  release_unique(uniques, jkey, lid)
  notify_waiters(jkey, done)
  redis.call('PEXPIRE', jkey, ttl)
  add_to_registry(state == 'failed' and failed or canceled, lid, now, ttl, limit)
end
emit(events, maxlen, queue, lid, state, v, now, changes)
return state
