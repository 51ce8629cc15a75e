-- idle.lua: a worker says one of its children is waiting idle for jobs of this queue (mode
-- 'on'), or that it no longer is (mode 'off'). While registered, enqueue_one.lua may lease a
-- new job straight to the worker, into that child's inbox list; a registration lapses after
-- its ttl (a worker that died). Either way, what the inbox holds is handed over (and the inbox
-- deleted), so a job leased just before the child stopped waiting is never left behind.
--
-- KEYS[1]  meta   KEYS[2] idle workers (score = registration's end, ms)
-- ARGV[1]  epoch   ARGV[2] member ('<worker name>#<child index>')   ARGV[3] inbox key prefix
-- ARGV[4]  'on' or 'off'   ARGV[5] registration ttl ms (mode 'on')
-- Returns  {now_ms, inbox entries...}: each a JSON array of strings
--          [local id, token, lease deadline ms, lease start ms, [job hash field, value, ...]]
local meta, idle = KEYS[1], KEYS[2]
local err = preflight(ARGV[1])
if err then return err end
local member, inbox = ARGV[2], ARGV[3] .. ARGV[2]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', idle, '-inf', '(' .. now)
if ARGV[4] == 'on' then
  redis.call('ZADD', idle, now + tonumber(ARGV[5]), member)
else
  redis.call('ZREM', idle, member)
end
local out = {now}
if redis.call('TYPE', inbox)['ok'] == 'list' then
  for _, entry in ipairs(redis.call('LRANGE', inbox, 0, -1)) do out[#out + 1] = entry end
  redis.call('DEL', inbox)
end
return out
