-- wrk script: one geo record per POST, each with a fresh Idempotency-Key, as many clients of the
-- original emulator send them. Arguments after `--`: a run tag (makes keys unique across runs) and,
-- optionally, the pause in milliseconds each connection takes before each request (pacing).
-- At the end it prints one JSON line: requests, seconds, errors, non-2xx answers, latency percentiles.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  tag = args[1] or "run"
  pause = tonumber(args[2] or "0")
  count = 0
  headers = {
    ["Content-Type"] = "application/vnd.kafka.json.v2+json",
  }
end

function delay()
  return pause
end

function request()
  count = count + 1
  local ind = id * 100000000 + count
  headers["Idempotency-Key"] = tag .. "-" .. id .. "-" .. count
  local body = '{"records":[{"value":{"ind":' .. ind .. ',"timestamp":"2022-06-01 12:00:00",'
    .. '"latitude":1.0,"longitude":2.0,"country":"France"}}]}'
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"seconds":%.6f,"non2xx":%d,"socket_errors":%d,'
      .. '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3))
end
