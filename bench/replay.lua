-- wrk script: send pre-built, pre-signed HTTP requests in turn.
--
-- bench/run.py signs every request with localbcc.auth.sign (bce-auth-v1, a
-- long expiration, so the server really verifies each one), writes them raw
-- and NUL-separated to a file, and passes its path: wrk -s replay.lua URL -- FILE.
-- done() prints one line, "BENCH {json}", that the runner parses.

local queue, count, next_index = {}, 0, 0
local threads = {}

-- Per-thread state, read back in done() with thread:get().
statuses = {}
first_error = nil

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  for raw in data:gmatch("[^%z]+") do
    count = count + 1
    queue[count] = raw
  end
  assert(count > 0, "no requests in " .. args[1])
end

function request()
  next_index = next_index % count + 1
  return queue[next_index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 and first_error == nil then
    first_error = status .. " " .. body
  end
end

local function quote(text)
  return '"' .. text:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, _)
  local merged, error_body = {}, nil
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + n
    end
    error_body = error_body or thread:get("first_error")
  end
  local parts = {}
  for status, n in pairs(merged) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "statuses": {%s}, "first_error": %s, ' ..
    '"socket_errors": %d, "mean_us": %.1f, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, table.concat(parts, ", "),
    error_body and quote(error_body) or "null",
    e.connect + e.read + e.write + e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
