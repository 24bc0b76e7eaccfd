"""The Lua scripts of the dispatch streams (cluster/dispatch.py, whose docstring names the
keys): each runs atomically in Redis, so a put, a take, a reclaim and the caller's settle or
withdraw of one entry never both win."""

# Several puts in one call (those of one turn of the event loop): ARGV[4..] holds (tenant,
# user, payload) per call, each checked against the bound in turn, as if it were put alone;
# per call its entry id, or '' when its tenant's queue was full.
PUT = """
local P, bound, bell_length = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
local rung = 0
for i = 4, #ARGV, 3 do
  local tenant, user = ARGV[i], ARGV[i + 1]
  local queued = P .. ':queued:' .. tenant
  if tonumber(redis.call('GET', queued) or '0') >= bound then
    out[#out + 1] = ''
  else
    local stream = P .. ':q:' .. tenant .. ':' .. user
    out[#out + 1] = redis.call('XADD', stream, '*', 'm', ARGV[i + 2])
    redis.call('INCR', queued)
    local users = P .. ':users:' .. tenant
    if redis.call('SADD', users .. ':set', user) == 1 then
      redis.call('RPUSH', users, user)
      redis.pcall('XGROUP', 'CREATE', stream, 'workers', '0')
    end
    if redis.call('SADD', P .. ':tenants:set', tenant) == 1 then
      redis.call('RPUSH', P .. ':tenants', tenant)
    end
    redis.call('SADD', P .. ':streams', stream)
    rung = rung + 1
  end
end
if rung > 0 then
  local tokens = {}
  for i = 1, math.min(rung, bell_length) do tokens[i] = '1' end
  redis.call('RPUSH', P .. ':bell', unpack(tokens))
  redis.call('LTRIM', P .. ':bell', -bell_length, -1)
end
return out
"""

# Each turn either takes an entry or removes a user (or a tenant) with nothing waiting, so the
# loop ends after at most `want` takes plus the users and tenants it drops.
TAKE = """
local P, consumer, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local tenants = P .. ':tenants'
local out = {}
while #out < want do
  local tenant = redis.call('LMOVE', tenants, tenants, 'LEFT', 'RIGHT')
  if not tenant then break end
  local users = P .. ':users:' .. tenant
  local taken = false
  while not taken do
    local user = redis.call('LMOVE', users, users, 'LEFT', 'RIGHT')
    if not user then break end
    local stream = P .. ':q:' .. tenant .. ':' .. user
    local read = redis.call('XREADGROUP', 'GROUP', 'workers', consumer, 'COUNT', 1,
                            'STREAMS', stream, '>')
    if read and read[1][2][1] then
      local entry = read[1][2][1]
      out[#out + 1] = {stream, entry[1], entry[2][2]}
      redis.call('DECR', P .. ':queued:' .. tenant)
      taken = true
    else
      redis.call('LREM', users, -1, user)
      redis.call('SREM', users .. ':set', user)
    end
  end
  if not taken then
    redis.call('LREM', tenants, -1, tenant)
    redis.call('SREM', tenants .. ':set', tenant)
    redis.call('DEL', P .. ':queued:' .. tenant)
  end
end
-- Short of `want`: nothing waits now, so the bell's tokens are for calls taken already; a
-- worker that blocks on it next wakes for a call put after this.
if #out < want then redis.call('DEL', P .. ':bell') end
return out
"""

RECLAIM = """
local P, consumer, idle, want = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local A = ARGV[5]
local out = {}
for _, stream in ipairs(redis.call('SMEMBERS', P .. ':streams')) do
  if #out >= want then break end
  local pending = redis.call('XPENDING', stream, 'workers', 'IDLE', idle, '-', '+', want)
  for _, p in ipairs(pending) do
    if #out >= want then break end
    if p[2] ~= consumer and redis.call('EXISTS', A .. ':alive:' .. p[2]) == 0 then
      local claimed = redis.call('XCLAIM', stream, 'workers', consumer, idle, p[1])
      if claimed[1] then
        out[#out + 1] = {stream, claimed[1][1], claimed[1][2][2], p[2]}
      end
    end
  end
  if redis.call('XLEN', stream) == 0 then redis.call('SREM', P .. ':streams', stream) end
end
return out
"""


# Entries held for at least ARGV[2] ms by workers whose stamp has expired, deleted unrun (up to
# ARGV[3]): on the chunk lane, whose caller takes back what a dead worker held at its next
# round, such an entry's caller has died too. Streams left empty leave the `streams` set.
DROP_ORPHANED = """
local P, idle, want, A = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local dropped = 0
for _, stream in ipairs(redis.call('SMEMBERS', P .. ':streams')) do
  if dropped >= want then break end
  local pending = redis.call('XPENDING', stream, 'workers', 'IDLE', idle, '-', '+', want)
  for _, p in ipairs(pending) do
    if dropped >= want then break end
    if redis.call('EXISTS', A .. ':alive:' .. p[2]) == 0 then
      redis.call('XACK', stream, 'workers', p[1])
      redis.call('XDEL', stream, p[1])
      dropped = dropped + 1
    end
  end
  if redis.call('XLEN', stream) == 0 then redis.call('SREM', P .. ':streams', stream) end
end
return dropped
"""

# The names of the workers stamped alive now (those of the `workers` set whose stamp exists).
LIVE_WORKERS = """
local A = ARGV[1]
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', A .. ':workers')) do
  if redis.call('EXISTS', A .. ':alive:' .. name) == 1 then out[#out + 1] = name end
end
return out
"""

# Per entry (stream, entry id, tenant, give up): 'waiting' (not taken yet), 'running' (held by
# a live worker), 'orphaned' (held by a worker whose stamp expired), 'gone' (acknowledged: its
# end is in history); taken back now: 'unclaimed' (waited past ARGV[2] ms with no worker
# alive) or 'abandoned' (orphaned, and the caller gives up on it: its flag is '1'). Each with
# the worker that holds (or held) it, '' for none.
SETTLE = """
local P, unclaimed, A = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local out = {}
-- Whether any worker is alive now (pruning the names whose stamp is gone), asked once.
local live
local function any_live()
  if live == nil then
    live = false
    for _, name in ipairs(redis.call('SMEMBERS', A .. ':workers')) do
      if redis.call('EXISTS', A .. ':alive:' .. name) == 1 then
        live = true
      else
        redis.call('SREM', A .. ':workers', name)
      end
    end
  end
  return live
end
for i = 4, #ARGV, 4 do
  local stream, id, tenant, give_up = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local verdict, holder = nil, ''
  if #redis.call('XRANGE', stream, id, id) == 0 then
    verdict = 'gone'
  else
    local pending = redis.call('XPENDING', stream, 'workers', id, id, 1)
    if #pending == 0 then
      local put_ms = tonumber(string.match(id, '^(%d+)'))
      if now_ms - put_ms >= unclaimed and not any_live() then
        redis.call('XDEL', stream, id)
        local queued = P .. ':queued:' .. tenant
        if tonumber(redis.call('GET', queued) or '0') > 0 then redis.call('DECR', queued) end
        verdict = 'unclaimed'
      else
        verdict = 'waiting'
      end
    elseif redis.call('EXISTS', A .. ':alive:' .. pending[1][2]) == 1 then
      verdict, holder = 'running', pending[1][2]
    elseif give_up == '1' then
      redis.call('XACK', stream, 'workers', id)
      redis.call('XDEL', stream, id)
      verdict, holder = 'abandoned', pending[1][2]
    else
      verdict, holder = 'orphaned', pending[1][2]
    end
  end
  out[#out + 1] = {verdict, holder}
end
return out
"""

# A cancel of a plain call: 'withdrawn' (no worker had taken it: deleted), 'held' (a worker
# holds it: marked cancelled for ARGV[5] ms) or 'gone' (it has ended).
WITHDRAW = """
local P, stream, id, tenant = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if #redis.call('XRANGE', stream, id, id) == 0 then return 'gone' end
if #redis.call('XPENDING', stream, 'workers', id, id, 1) == 0 then
  redis.call('XDEL', stream, id)
  local queued = P .. ':queued:' .. tenant
  if tonumber(redis.call('GET', queued) or '0') > 0 then redis.call('DECR', queued) end
  return 'withdrawn'
end
redis.call('SET', ARGV[7] .. ':cancel:' .. ARGV[6], '1', 'PX', ARGV[5])
return 'held'
"""

# Acknowledge and delete entries whose end is in history: ARGV pairs of stream and entry id.
# One script, as a transaction was (an entry acknowledged is deleted with it), but one command.
DONE = """
for i = 1, #ARGV, 2 do
  redis.call('XACK', ARGV[i], 'workers', ARGV[i + 1])
  redis.call('XDEL', ARGV[i], ARGV[i + 1])
end
return 0
"""

# Outcomes for one web process: ARGV[1] the list's expiry (ms), then the outcomes, pushed in
# order and the expiry set again, in one command.
REPLY = """
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 0
"""
