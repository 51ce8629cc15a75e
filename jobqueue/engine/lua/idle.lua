-- idle.lua: a worker says one of its children is waiting idle for jobs of this queue (mode
-- 'on'), or that it no longer is (mode 'off'). While registered, enqueue_one.lua may lease a
-- new job straight to the worker, into that child's inbox list; a registration lapses after
-- its ttl (a worker that died). Either way, what the inbox holds is handed over (and the inbox
-- deleted), so a job leased just before the child stopped waiting is never left behind.
--
-- KEYS[1]  meta   KEYS[2] idle workers (score = registration's end, ms)
-- ARGV[1]  epoch   ARGV[2] member ('<worker name>#<child index>')   ARGV[3] inbox key prefix
-- ARGV[4]  'on', 'renew' (extend a registration that is still there, never make a new one:
--          an enqueue may have just taken it) or 'off'   ARGV[5] registration ttl ms
-- Returns  {now_ms, was, inbox entries...}: was is 1 when the member was registered (and not
--          lapsed) when the call came, else 0; each entry a JSON array of strings
--          [local id, token, lease deadline ms, lease start ms, [job hash field, value, ...]]
local meta, idle = KEYS[1], KEYS[2]
local err = preflight(ARGV[1])
if err then return err end
local member, inbox = ARGV[2], ARGV[3] .. ARGV[2]
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', idle, '-inf', '(' .. now)
local was = redis.call('ZSCORE', idle, member) and 1 or 0
if ARGV[4] == 'on' or (ARGV[4] == 'renew' and was == 1) then
  redis.call('ZADD', idle, now + tonumber(ARGV[5]), member)
elseif ARGV[4] == 'off' then
  redis.call('ZREM', idle, member)
end
local out = {now, was}
if redis.call('TYPE', inbox)['ok'] == 'list' then
  for _, entry in ipairs(redis.call('LRANGE', inbox, 0, -1)) do out[#out + 1] = entry end
  redis.call('DEL', inbox)
end
return out
