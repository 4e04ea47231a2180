// Command gomapbench is the Go-side anchor for syncmap's gomap layer: it times
// Go's builtin map[uint64]uintptr (Go 1.19 runtime/map.go, the design gomap
// ports) from a single goroutine, so gomap's C numbers have a Go number to be
// held against.
//
// What is measured, for each n in -sizes (default 1000,100000,10000000):
//
//	put       insert k_0..k_{n-1} (in index order) into a map made with
//	          make(map[uint64]uintptr) (no size hint), value uintptr(i);
//	          growth and evacuation are part of the cost; the make is inside
//	          the timed region.
//	get_hit   look up every k_i once, in a shuffled order, on a full map.
//	get_miss  look up k_n..k_{2n-1} (none present), in index order, on a full
//	          map.
//	delete    delete every k_i once, in the same shuffled order, from a full
//	          map (the one put/get left for rep 0, a fresh untimed build
//	          for every later repetition).
//
// and, at n = -mem-n (default 1000000):
//
//	bytes_per_entry  runtime.GC; ReadMemStats; build the map as in put;
//	                 runtime.GC; ReadMemStats; (HeapAlloc after - before)/n,
//	                 with the map kept alive past the second reading.
//
// Keys: k_i = splitmix64(i + 1), where splitmix64 adds 0x9E3779B97F4A7C15 and
// then applies the usual two xor-shift-multiply rounds and a final xor-shift.
// splitmix64 is a bijection on uint64, so all k_i are distinct and the miss keys
// never collide with the hit keys. All 2n keys are computed into a []uint64
// before anything is timed; the timed loops read keys from that array.
//
// Shuffle: the permutation for get_hit and delete is a Fisher-Yates shuffle of
// the array k_0..k_{n-1}: with the xorshift64* generator below seeded with -seed
// (reset to -seed for every n), for i from n-1 down to 1: j = next() % (i+1);
// swap a[i], a[j]. The same permutation serves every repetition of both ops.
//
// xorshift64*: x ^= x >> 12; x ^= x << 25; x ^= x >> 27; return x * 0x2545F4914F6CDD1D
// (the state x is updated, the product is returned).
//
// Timing: each repetition calls runtime.GC() (untimed, as Go's testing package
// does before every benchmark run), then times passes of n operations, each
// with time.Now() once before and once after the whole loop, until their
// summed time reaches -min-ms (default 20 ms; at least one pass);
// ns_per_op = summed time / (passes * n).  put and delete rebuild the map
// (untimed for delete) before every pass after the first.  -min-ms 0 gives
// exactly one pass.  stress/gomap_bench.c does the same, so small n compare
// like for like.  There is no per-operation timing. Lookups add their results into a local sum that is
// stored to a package-level sink, and every run is checked (hit values sum to
// n(n-1)/2, no miss finds anything, put/delete leave len == n / 0); a failed
// check exits with status 1.
//
// and, with -ops loop (not part of "all"), the life of a short-lived map,
// measured exactly as stress/gomap_bench.c measures gomap's: for each n,
// iterations of
//
//	loop_put     m := make(map[uint64]uintptr), then m[k_i] = uintptr(i) in
//	             index order
//	loop_get     read every k_i once in a strided order: i = 0, s, 2s, ...
//	             (mod n), s = stride(n, 0.618); values summed and checked
//	loop_miss    read k_n..k_{2n-1} (absent) in index order
//	loop_delete  delete every k_i in another strided order, s = stride(n,
//	             0.382), then drop the map (m = nil; the collector frees it
//	             later, on its own time)
//
// stride(n, f): the smallest s >= max(1, floor(n*f)) with gcd(s, n) == 1 (f
// as the integer ratios 618034/1e6 and 381966/1e6).  Each phase is timed on
// its own and summed over iterations; -loop-warmup iterations (default 1)
// run first, untimed; then timed iterations until every phase's sum reaches
// -min-ms (default 200 ms for the loop).  No runtime.GC() is called inside
// the loop: collection costs land where the program's allocations trigger
// them (the background mark worker may run on another core; cpu_ns_per_op,
// getrusage of the whole process, shows that).  Per phase the minor page
// faults (ru_minflt) and CPU time (ru_utime + ru_stime) are summed too:
//
//	RESULT impl=go-map op=loop_put n=100000 rep=0 ns_per_op=.. cpu_ns_per_op=..
//	       minflt_per_op=.. iters=..
//	RESULT impl=go-map op=loop_peak_rss_mb n=100000 rep=0 value=..
//
// Output: one line per (op, n, rep):
//
//	RESULT impl=go-map op=get_hit n=1000 rep=0 ns_per_op=12.345
//	RESULT impl=go-map op=bytes_per_entry n=1000000 rep=0 value=40.12
package main

import (
	"flag"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sink receives lookup results so the compiler cannot drop the lookups.
var sink uintptr

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	z := x
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// xorshift64star is the shuffle generator; its state must not be zero.
type xorshift64star struct{ x uint64 }

func (r *xorshift64star) next() uint64 {
	r.x ^= r.x >> 12
	r.x ^= r.x << 25
	r.x ^= r.x >> 27
	return r.x * 0x2545F4914F6CDD1D
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gomapbench: "+format+"\n", args...)
	os.Exit(1)
}

func parseSizes(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		// Accept 1e7-style spellings as well as plain integers.
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || v < 1 || v != float64(int(v)) {
			die("bad size %q", f)
		}
		out = append(out, int(v))
	}
	if len(out) == 0 {
		die("no sizes given")
	}
	return out
}

var knownOps = []string{"put", "get_hit", "get_miss", "delete", "bytes_per_entry", "loop"}

func parseOps(s string) map[string]bool {
	sel := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if f == "all" {
			for _, o := range knownOps {
				if o != "loop" {
					sel[o] = true
				}
			}
			continue
		}
		ok := false
		for _, o := range knownOps {
			if o == f {
				ok = true
			}
		}
		if !ok {
			die("unknown op %q (known: %s, all)", f, strings.Join(knownOps, ","))
		}
		sel[f] = true
	}
	return sel
}

// makeKeys returns k_0..k_{count-1}.
func makeKeys(count int) []uint64 {
	keys := make([]uint64, count)
	for i := range keys {
		keys[i] = splitmix64(uint64(i) + 1)
	}
	return keys
}

// shuffled returns a Fisher-Yates shuffle of a copy of keys, as described in
// the header comment.
func shuffled(keys []uint64, seed uint64) []uint64 {
	a := append([]uint64(nil), keys...)
	rng := xorshift64star{x: seed}
	for i := len(a) - 1; i >= 1; i-- {
		j := rng.next() % uint64(i+1)
		a[i], a[j] = a[j], a[i]
	}
	return a
}

// build fills a fresh map the same way put does, untimed.
func build(keys []uint64) map[uint64]uintptr {
	m := make(map[uint64]uintptr)
	for i, k := range keys {
		m[k] = uintptr(i)
	}
	return m
}

func report(op string, n, rep int, elapsed time.Duration, passes int) {
	fmt.Printf("RESULT impl=go-map op=%s n=%d rep=%d ns_per_op=%.3f\n",
		op, n, rep, float64(elapsed.Nanoseconds())/float64(n)/float64(passes))
}

// minTime is -min-ms: passes are repeated until their summed time reaches it.
var minTime time.Duration

// repeat runs pass (which returns the time of one timed pass) until the sum
// reaches minTime, and returns the sum and the number of passes.
func repeat(pass func() time.Duration) (time.Duration, int) {
	var total time.Duration
	passes := 0
	for passes == 0 || total < minTime {
		total += pass()
		passes++
	}
	return total, passes
}

func timePut(keys []uint64) (map[uint64]uintptr, time.Duration) {
	runtime.GC()
	start := time.Now()
	m := make(map[uint64]uintptr)
	for i, k := range keys {
		m[k] = uintptr(i)
	}
	elapsed := time.Since(start)
	if len(m) != len(keys) {
		die("put: len %d after %d inserts", len(m), len(keys))
	}
	return m, elapsed
}

func timeGetHit(m map[uint64]uintptr, order []uint64) time.Duration {
	runtime.GC()
	var sum uintptr
	start := time.Now()
	for _, k := range order {
		sum += m[k]
	}
	elapsed := time.Since(start)
	sink = sum
	n := uintptr(len(order))
	if sum != n*(n-1)/2 {
		die("get_hit: value sum %d, want %d", sum, n*(n-1)/2)
	}
	return elapsed
}

func timeGetMiss(m map[uint64]uintptr, absent []uint64) time.Duration {
	runtime.GC()
	var sum uintptr
	found := 0
	start := time.Now()
	for _, k := range absent {
		v, ok := m[k]
		sum += v
		if ok {
			found++
		}
	}
	elapsed := time.Since(start)
	sink = sum
	if found != 0 {
		die("get_miss: %d of %d absent keys found", found, len(absent))
	}
	return elapsed
}

func timeDelete(m map[uint64]uintptr, order []uint64) time.Duration {
	runtime.GC()
	start := time.Now()
	for _, k := range order {
		delete(m, k)
	}
	elapsed := time.Since(start)
	if len(m) != 0 {
		die("delete: len %d after deleting all %d keys", len(m), len(order))
	}
	return elapsed
}

func bytesPerEntry(keys []uint64) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := make(map[uint64]uintptr)
	for i, k := range keys {
		m[k] = uintptr(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(m)
	if len(m) != len(keys) {
		die("bytes_per_entry: len %d after %d inserts", len(m), len(keys))
	}
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(len(keys))
}

// ---- the create-fill-probe-delete-free loop ----

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// stride returns the smallest s >= max(1, n*num/1e6) coprime to n.
func stride(n int, num uint64) int {
	hi, lo := bits.Mul64(uint64(n), num)
	q, _ := bits.Div64(hi, lo, 1000000)
	s := int(q)
	if s < 1 {
		s = 1
	}
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

type phase struct {
	ns, cpuNs int64
	minflt    int64
}

type mark struct {
	t      time.Time
	cpuNs  int64
	minflt int64
}

func rusage() (cpuNs, minflt int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		die("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), ru.Minflt
}

func markNow() mark {
	var k mark
	k.cpuNs, k.minflt = rusage()
	k.t = time.Now() // last: the clock brackets the work as tightly as it can
	return k
}

// add closes a phase opened at a: reads the clock first.
func (p *phase) add(a mark) {
	d := time.Since(a.t)
	cpu, flt := rusage()
	p.ns += d.Nanoseconds()
	p.cpuNs += cpu - a.cpuNs
	p.minflt += flt - a.minflt
}

func loopReport(op string, n, rep int, p *phase, iters int) {
	ops := float64(n) * float64(iters)
	fmt.Printf("RESULT impl=go-map op=%s n=%d rep=%d ns_per_op=%.3f cpu_ns_per_op=%.3f minflt_per_op=%.5f iters=%d\n",
		op, n, rep, float64(p.ns)/ops, float64(p.cpuNs)/ops, float64(p.minflt)/ops, iters)
}

//go:noinline
func loopPut(keys []uint64) map[uint64]uintptr {
	m := make(map[uint64]uintptr)
	for i, k := range keys {
		m[k] = uintptr(i)
	}
	return m
}

//go:noinline
func loopGet(m map[uint64]uintptr, keys []uint64, s int) uintptr {
	var sum uintptr
	n := len(keys)
	idx := 0
	for i := 0; i < n; i++ {
		sum += m[keys[idx]]
		idx += s
		if idx >= n {
			idx -= n
		}
	}
	return sum
}

//go:noinline
func loopMiss(m map[uint64]uintptr, absent []uint64) (uintptr, int) {
	var sum uintptr
	found := 0
	for _, k := range absent {
		v, ok := m[k]
		sum += v
		if ok {
			found++
		}
	}
	return sum, found
}

//go:noinline
func loopDelete(m map[uint64]uintptr, keys []uint64, s int) {
	n := len(keys)
	idx := 0
	for i := 0; i < n; i++ {
		delete(m, keys[idx])
		idx += s
		if idx >= n {
			idx -= n
		}
	}
}

func runLoop(sizes []int, reps int, minTime time.Duration, warmup int) {
	for _, n := range sizes {
		all := makeKeys(2 * n)
		keys, absent := all[:n], all[n:]
		sGet, sDel := stride(n, 618034), stride(n, 381966)
		want := uintptr(n) * uintptr(n-1) / 2
		runtime.GC()
		for rep := 0; rep < reps; rep++ {
			var put, get, miss, del phase
			iters := 0
			for it := 0; ; it++ {
				timed := it >= warmup
				var scratch phase
				pick := func(p *phase) *phase {
					if timed {
						return p
					}
					return &scratch
				}
				a := markNow()
				m := loopPut(keys)
				pick(&put).add(a)
				if len(m) != n {
					die("loop_put: len %d after %d inserts", len(m), n)
				}

				a = markNow()
				sum := loopGet(m, keys, sGet)
				pick(&get).add(a)
				sink = sum
				if sum != want {
					die("loop_get: value sum %d, want %d", sum, want)
				}

				a = markNow()
				sum, found := loopMiss(m, absent)
				pick(&miss).add(a)
				sink = sum
				if found != 0 {
					die("loop_miss: %d of %d absent keys found", found, n)
				}

				a = markNow()
				loopDelete(m, keys, sDel)
				l := len(m)
				m = nil
				pick(&del).add(a)
				if l != 0 {
					die("loop_delete: len %d after deleting all %d keys", l, n)
				}
				if !timed {
					continue
				}
				iters++
				if put.ns >= minTime.Nanoseconds() && get.ns >= minTime.Nanoseconds() &&
					miss.ns >= minTime.Nanoseconds() && del.ns >= minTime.Nanoseconds() {
					break
				}
			}
			loopReport("loop_put", n, rep, &put, iters)
			loopReport("loop_get", n, rep, &get, iters)
			loopReport("loop_miss", n, rep, &miss, iters)
			loopReport("loop_delete", n, rep, &del, iters)
		}
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Printf("RESULT impl=go-map op=loop_peak_rss_mb n=%d rep=0 value=%.1f\n", n, float64(ru.Maxrss)/1024)
		runtime.KeepAlive(all)
	}
}

func main() {
	sizesFlag := flag.String("sizes", "1000,100000,10000000", "comma-separated map sizes n")
	opsFlag := flag.String("ops", "all", "comma-separated ops: put,get_hit,get_miss,delete,bytes_per_entry or all; loop (not in all): create-fill-probe-delete-free iterations")
	reps := flag.Int("reps", 5, "repetitions of every measurement")
	seed := flag.Uint64("seed", 1, "xorshift64* seed for the shuffles (nonzero)")
	memN := flag.Int("mem-n", 1000000, "n for bytes_per_entry")
	minMs := flag.Float64("min-ms", -1, "repeat each measurement's passes until they sum to this (default 20, loop 200; 0: one pass)")
	loopWarmup := flag.Int("loop-warmup", 1, "untimed loop iterations first")
	flag.Parse()
	loopMin := *minMs
	if *minMs < 0 {
		*minMs, loopMin = 20, 200
	}
	minTime = time.Duration(*minMs * float64(time.Millisecond))
	if *loopWarmup < 0 {
		die("-loop-warmup must be >= 0")
	}

	if *seed == 0 {
		die("-seed must be nonzero (xorshift64* state)")
	}
	if *reps < 1 {
		die("-reps must be >= 1")
	}
	if *memN < 1 {
		die("-mem-n must be >= 1")
	}
	sizes := parseSizes(*sizesFlag)
	ops := parseOps(*opsFlag)

	fmt.Printf("# %s GOMAXPROCS=%d NumCPU=%d %s/%s\n", runtime.Version(),
		runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)

	for _, n := range sizes {
		if !(ops["put"] || ops["get_hit"] || ops["get_miss"] || ops["delete"]) {
			break
		}
		all := makeKeys(2 * n)
		keys, absent := all[:n], all[n:]
		var order []uint64
		if ops["get_hit"] || ops["delete"] {
			order = shuffled(keys, *seed)
		}

		var m map[uint64]uintptr
		if ops["put"] {
			for rep := 0; rep < *reps; rep++ {
				d, passes := repeat(func() time.Duration {
					var d time.Duration
					m, d = timePut(keys)
					return d
				})
				report("put", n, rep, d, passes)
			}
		}
		if ops["get_hit"] || ops["get_miss"] {
			if m == nil {
				m = build(keys)
			}
			if ops["get_hit"] {
				for rep := 0; rep < *reps; rep++ {
					d, passes := repeat(func() time.Duration { return timeGetHit(m, order) })
					report("get_hit", n, rep, d, passes)
				}
			}
			if ops["get_miss"] {
				for rep := 0; rep < *reps; rep++ {
					d, passes := repeat(func() time.Duration { return timeGetMiss(m, absent) })
					report("get_miss", n, rep, d, passes)
				}
			}
		}
		if ops["delete"] {
			for rep := 0; rep < *reps; rep++ {
				// Every repetition starts from a full map: the one left by
				// put/get for the first, a fresh (untimed) build after that.
				first := true
				d, passes := repeat(func() time.Duration {
					if !first || rep > 0 || m == nil {
						m = build(keys)
					}
					first = false
					return timeDelete(m, order)
				})
				report("delete", n, rep, d, passes)
			}
		}
		// The map and key arrays of this n are dead from here; collect them
		// before the next, possibly much larger, n.
		runtime.GC()
	}

	if ops["loop"] {
		runLoop(sizes, *reps, time.Duration(loopMin*float64(time.Millisecond)), *loopWarmup)
	}

	if ops["bytes_per_entry"] {
		// The keys are made before the first ReadMemStats, so they are not
		// counted.
		keys := makeKeys(*memN)
		for rep := 0; rep < *reps; rep++ {
			fmt.Printf("RESULT impl=go-map op=bytes_per_entry n=%d rep=%d value=%.2f\n",
				*memN, rep, bytesPerEntry(keys))
		}
		runtime.KeepAlive(keys)
	}
}
