-- init_queue.lua: give a queue its epoch, or read the one it has.
--
-- The epoch is a random id set once per queue. Every other script is passed the epoch its
-- caller knows and refuses to run if it differs: that is how the engine notices that Redis
-- lost its data instead of carrying on blind.
--
-- KEYS[1]  meta hash of the queue
-- ARGV[1]  a new random epoch, used only if the queue has none
-- ARGV[2]  the epoch the caller knew before, when it found it lost ('' otherwise); recorded
--          as lost_epoch with lost_at so operators can see when the loss was noticed: also
--          when the queue has a new epoch already, made by a process that never knew the old
--          one (a web process started after Redis lost its data), unless that loss is recorded
-- Returns  the queue's epoch (the existing one, or ARGV[1])
local meta = KEYS[1]
local epoch = redis.call('HGET', meta, 'epoch')
if epoch then
  if ARGV[2] ~= '' and ARGV[2] ~= epoch and redis.call('HGET', meta, 'lost_epoch') ~= ARGV[2] then
    redis.call('HSET', meta, 'lost_epoch', ARGV[2], 'lost_at', now_ms())
  end
  return epoch
end
local now = now_ms()
redis.call('HSET', meta, 'epoch', ARGV[1], 'created', now)
if ARGV[2] ~= '' then
  redis.call('HSET', meta, 'lost_epoch', ARGV[2], 'lost_at', now)
end
return ARGV[1]
