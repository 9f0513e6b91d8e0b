-- The same GET every time (the URL given to wrk), e.g. the market list (S3); only reports.
package.path = (os.getenv("BENCH_LIB") or "bench/lib") .. "/?.lua;" .. package.path
local common = require("common")

done = common.done
