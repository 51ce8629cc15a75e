-- release.lua: give a running job back to the queue without counting the attempt
-- (graceful shutdown). It goes to the front of its priority. A job whose cancel was requested
-- is canceled instead.
--
-- KEYS[1]  meta   KEYS[2] leases   KEYS[3] ready   KEYS[4] events   KEYS[5] wake
-- KEYS[6]  job hash   KEYS[7] canceled registry   KEYS[8] uniques   KEYS[9] done list
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] local id  ARGV[5] fence token
-- ARGV[6]  TTL ms of a canceled job   ARGV[7] registry size limit   ARGV[8] wake cap
-- Returns  'queued' or 'canceled', or '' when refused (the token is not the job's current one)
local meta, leases, ready, events, wake, jkey =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local canceled, uniques, done = KEYS[7], KEYS[8], KEYS[9]
local err = preflight(ARGV[1])
if err then return err end
local lid = ARGV[4]
if not holds_lease(jkey, ARGV[5]) then return '' end
local now = now_ms()
if redis.call('HGET', jkey, 'cancel') == '1' then
  redis.call('ZREM', leases, lid)
  redis.call('HSET', jkey, 'state', 'canceled', 'ended', now)
  redis.call('HDEL', jkey, 'lease', 'token')
  local v = bump_version(jkey)
  finish(jkey, lid, now, canceled,
    {uniques = uniques, done = done, ttl = tonumber(ARGV[6]), limit = tonumber(ARGV[7])})
  emit(events, ARGV[3], ARGV[2], lid, 'canceled', v, now, {'ended', now})
  return 'canceled'
end
local h = redis.call('HMGET', jkey, 'prio', 'workers', 'att')
-- Forget this attempt: one attempt fewer, and its worker off the list.
local workers = h[2] or ''
local cut = string.find(workers, ' [^ ]*$')
local changes = {'att', math.max((tonumber(h[3]) or 1) - 1, 0)}
if cut then
  local earlier = string.sub(workers, 1, cut - 1)
  changes[#changes + 1] = 'workers'; changes[#changes + 1] = earlier
  changes[#changes + 1] = 'worker'; changes[#changes + 1] = string.match(earlier, '[^ ]*$')
end
redis.call('ZREM', leases, lid)
redis.call('ZADD', ready, front_score(h[1]), lid)
redis.call('HSET', jkey, 'state', 'queued', unpack(changes))
if not cut then
  -- No attempt left: no worker either (cleared fields travel in the event as '').
  redis.call('HDEL', jkey, 'workers', 'worker')
  changes[#changes + 1] = 'workers'; changes[#changes + 1] = ''
  changes[#changes + 1] = 'worker'; changes[#changes + 1] = ''
end
redis.call('HDEL', jkey, 'lease', 'token')
local v = bump_version(jkey)
wake_workers(wake, 1, tonumber(ARGV[8]))
emit(events, ARGV[3], ARGV[2], lid, 'queued', v, now, changes)
return 'queued'
