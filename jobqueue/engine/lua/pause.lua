-- pause.lua: pause or resume a queue. Claims skip a paused queue; enqueue still works.
--
-- KEYS[1]  meta   KEYS[2] events   KEYS[3] wake
-- ARGV[1]  epoch  ARGV[2] queue  ARGV[3] events maxlen  ARGV[4] '1' pause, '0' resume
-- ARGV[5]  wake cap
-- Returns  1 when the flag changed, 0 when it already had that value
local meta, events, wake = KEYS[1], KEYS[2], KEYS[3]
local err = preflight(ARGV[1])
if err then return err end
local paused = redis.call('HGET', meta, 'paused') == '1'
if paused == (ARGV[4] == '1') then return 0 end
local now = now_ms()
if ARGV[4] == '1' then
  redis.call('HSET', meta, 'paused', '1')
else
  redis.call('HDEL', meta, 'paused')
  wake_workers(wake, 1, tonumber(ARGV[5]))
end
-- A queue event: no job id; the state says what happened.
emit(events, ARGV[3], ARGV[2], '', ARGV[4] == '1' and 'paused' or 'resumed', 0, now, {})
return 1
