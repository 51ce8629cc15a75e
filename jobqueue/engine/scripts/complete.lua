-- complete.lua: record the success of one or more running jobs of one queue.
--
-- Each job's result (JSON) is stored; the job hash then expires after its result TTL and its
-- id enters the succeeded registry (bounded by age and size). Refused, with no change, for a
-- job whose fence token is not the caller's.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] succeeded registry   KEYS[4] events
-- KEYS[5]  uniques   then per job i: KEYS[4 + 2i] job hash, KEYS[5 + 2i] done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] default result TTL ms
-- ARGV[5]  registry size limit, then per job: local id, fence token, result JSON,
--          result TTL ms ('' = the job's own 'ttl' field, else the default)
-- Returns  {status...}: 1 recorded, 0 refused (lease lost)
local meta, leases, registry, events, uniques = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local err = preflight(ARGV[1], 5)
if err then return err end
local queue, maxlen = ARGV[2], ARGV[3]
local default_ttl, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = now_ms()
local out = {}
local n = (#KEYS - 5) / 2
for i = 1, n do
  local jkey, done = KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local a = 2 + 4 * i
  local lid, token, result, ttl = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  if holds_lease(jkey, token) then
    if not ttl then
      local own = tonumber(redis.call('HGET', jkey, 'ttl'))
      ttl = own and own * 1000 or default_ttl
    end
    redis.call('ZREM', leases, lid)
    redis.call('HSET', jkey, 'state', 'succeeded', 'result', result, 'ended', now)
    redis.call('HDEL', jkey, 'lease', 'cancel')
    local v = bump_version(jkey)
    release_unique(uniques, jkey, lid)
    notify_waiters(jkey, done)
    redis.call('PEXPIRE', jkey, ttl)
    redis.call('ZADD', registry, now, lid)
    emit(events, maxlen, queue, lid, 'succeeded', v, now, {'result', result, 'ended', now})
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
-- The registry is trimmed once per call, by age and size, not once per job.
redis.call('ZREMRANGEBYSCORE', registry, '-inf', '(' .. (now - default_ttl))
redis.call('ZREMRANGEBYRANK', registry, 0, -(limit + 1))
return out
