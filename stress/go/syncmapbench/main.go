// Command syncmapbench is the Go-side anchor for syncmap's concurrent layer: it
// runs Go 1.19's sync.Map on the benchmark shapes of Go's own
// src/sync/map_bench_test.go, plus a few mixed read/write shapes that a C
// harness reproduces exactly, and prints one machine-readable line per run.
//
// # The harness (what Go's benchMap + testing.B.RunParallel do, redone here)
//
// One run of a benchmark with a budget of N iterations and T threads:
//
//  1. runtime.GOMAXPROCS(T); runtime.GC() (testing does this before every run).
//  2. A fresh sync.Map; the shape's setup runs on it, untimed (Go calls
//     b.ResetTimer after setup).
//  3. time.Now(); start T goroutines; wait for all; time.Since. The goroutine
//     start and the final wait are inside the timed region, as in Go.
//     ns_per_op = elapsed / N, where N is the total of all workers' iterations.
//  4. Worker w (0-based) keeps a private counter i that starts at w*N and is
//     incremented after every iteration (Go: id*b.N), so workers use disjoint
//     key ranges. It takes iterations from one shared atomic counter in grains
//     with the arithmetic of testing.PB.Next: add the grain to the counter; if
//     the new total is <= N take a whole grain, else if it is < N+grain take the
//     remainder N+grain-total, else stop. Every worker therefore runs until the
//     budget is exhausted, and the harness checks the iterations add up to N.
//  5. Grain: with -grain G > 0 it is G. Otherwise, as in Go, it is the number
//     of iterations the previous run of the same benchmark did in 100us
//     (1e5 * prevN / prevNs), clamped to [1, -grain-max]. Go clamps at 10000;
//     -grain-max defaults to 1000 here (use -grain-max 10000 for Go's exact
//     figure). With -n there is no previous run and the grain is -grain-max.
//  6. With -n N the single run uses N. Otherwise N is found as testing.B does
//     for -benchtime: run N=1, then repeat: n = target*prevN/prevNs; n += n/5;
//     n = min(n, 100*last); n = max(n, last+1); n = min(n, 1e9); run n — until
//     a run takes >= -time or n reaches 1e9. Each run uses a fresh map and
//     setup (as Go does: the b.Run closure makes a new map every time). Only
//     the final run is reported. Like Go's, this search is misled by a large
//     one-time cost in the first iterations: in the additional shapes the
//     first write after setup copies all K entries into a new dirty map, so
//     at large K with a short -time the search can stop at N = 1; use -n.
//
// Maps are used through an interface with sync.Map's method set, like Go's
// mapInterface, so every key and value passed is an interface value whose
// dynamic value escapes: an int >= 256 is boxed on the heap at every call, as
// in Go's benchmark, and that allocation is part of the measured cost.
//
// # Go 1.19 shapes (keys=0 in the output; i is the worker's counter)
//
// Same setup (including the "prime" loops, which make sync.Map promote its
// dirty map so that everything is in the read map), same per-iteration
// operation, same keys and values as map_bench_test.go:
//
//	LoadMostlyHits         setup LoadOrStore(k,k) k<1023; prime: Load(j%1023) j<2046
//	                       op    Load(i % 1024)
//	LoadMostlyMisses       setup LoadOrStore(0,0); prime: Load(0) twice
//	                       op    Load(i % 1024)
//	LoadOrStoreBalanced    setup 128 keys, prime as above
//	                       op    j=i%256; j<128: LoadOrStore(j, i) must load,
//	                             else LoadOrStore(i, i) must store (checked:
//	                             exit 1 otherwise, where Go calls b.Fatalf)
//	LoadOrStoreUnique      op    LoadOrStore(i, i)
//	LoadOrStoreCollision   setup LoadOrStore(0,0);  op LoadOrStore(0, 0)
//	LoadAndDeleteBalanced  setup 128 keys, prime
//	                       op    j=i%256; j<128: LoadAndDelete(j) else LoadAndDelete(i)
//	LoadAndDeleteUnique    op    LoadAndDelete(i)
//	LoadAndDeleteCollision setup LoadOrStore(0,0);  op LoadAndDelete(0)  (the 1.19 form)
//	Range                  setup Store(k,k) k<1024 (no prime)
//	                       op    Range(func(_, _) bool { return true })
//	AdversarialAlloc       op    Load(i); if ++loadsSinceStore > stores
//	                             { LoadOrStore(i, stores); loadsSinceStore = 0; stores++ }
//	                             (per-worker int64 counters, stores is the value)
//	AdversarialDelete      setup Store(k,k) k<1024
//	                       op    Load(i); if i%1024 == 0 { Range(f: Delete(k);
//	                             return false); Store(i, i) }
//	DeleteCollision        setup LoadOrStore(0,0);  op Delete(0)
//
// Values are Go ints (AdversarialAlloc: int64), boxed in any, for both key types.
//
// # Additional shapes (keys=K from -keys; not in Go)
//
// rng is per worker: xorshift64* (x ^= x>>12; x ^= x<<25; x ^= x>>27; return
// x*0x2545F4914F6CDD1D) with state splitmix64(w + 1 + seed), w the 0-based
// worker index and seed from -seed (default 1). "prime over [0,S)" means
// Load(j % S) for j in [0, 2S).
//
//	ReadMostly99  setup Store(k,k) k<K; prime over [0,K)
//	              op    r=rng(); k=(r>>8)%K; if r%1000 < 990 Load(k)
//	                    else if r%2 == 0 Store(k,k) else Delete(k)
//	ReadMostly90  the same with 900 instead of 990
//	Churn         setup Store(k,k) for even k < 2K; prime over [0,2K)
//	              op    r=rng(); k=(r>>8)%(2K); r%10: 0,1 Load(k); 2..5 Store(k,k);
//	                    6..9 Delete(k)
//	StoreLatency  setup Store(k,k) k<K; prime over [0,K)
//	              op    (c counts the worker's iterations from 1; P = K/16+1)
//	                    Load(K+i) (a miss: K+i is never stored before);
//	                    if c%P == 0: LoadOrStore(K+i, K+i), which must store
//	                    (checked). The key is offset by K so that worker 0's
//	                    keys are fresh too. Between two rebuilds of the dirty
//	                    map (an O(map size) copy) there are ~16 stores, so the
//	                    map keeps cycling promote -> copy -> promote.
//	                    Part of "all" only with -latency.
//	InFlight      (Go issue 40999's in-flight requests; K unused) setup Store(0,0);
//	              prime over [0,1)
//	              op    k = 1<<40 + i (a fresh key): Store(k,k); Load(k) (must
//	                    find it, checked); Delete(k); Load(0) (the long-lived
//	                    key). One op is one whole cycle.
//
// # Key types (-keytype)
//
//	int    keys are Go ints boxed in any, exactly like Go's benchmark.
//	str32  key k is its decimal form left-padded with '0' to exactly 32 bytes,
//	       built per call into a [32]byte and converted to a string: that is
//	       two small allocations per key (the string bytes, and the string
//	       header boxed into any). They are timed, deliberately: a real server
//	       builds its lookup keys too. The Go shapes use the string form of
//	       every key they use; values stay ints.
//
// # Latency (-latency)
//
// Workers call the map through a wrapper (timedMap) that brackets every write
// operation (Store, LoadOrStore, LoadAndDelete, Delete, including the Delete
// inside AdversarialDelete's Range) with time.Now()/time.Since and appends its
// duration in ns to a per-worker slice; Loads and Ranges are passed through
// untimed. The clock reads and the extra call also slow that run's RESULT
// ns_per_op, so take ns_per_op from runs without -latency. After the final run the samples of all
// workers are merged and sorted; pX is the nearest-rank percentile (the
// ceil(X*ops)-th smallest sample); max is the largest. A shape without write
// operations prints ops=0 and zeros.
//
// # Output
//
//	# go1.19.8 GOMAXPROCS=2 NumCPU=2 linux/amd64
//	RESULT impl=go-sync.Map bench=LoadMostlyHits keytype=int keys=0 threads=2 n=1234567 ns_per_op=25.300
//	LATENCY impl=go-sync.Map bench=StoreLatency keytype=int keys=1000000 threads=1 ops=12345 p50=80 p99=300 p999=2000 max=150000000
//
// A failed check prints a message on stderr and exits with status 1.
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// mapI is sync.Map's method set in Go 1.19. Calling through it, as Go's
// benchmark calls through its mapInterface, makes every key and value escape.
type mapI interface {
	Load(key any) (value any, ok bool)
	Store(key, value any)
	LoadOrStore(key, value any) (actual any, loaded bool)
	LoadAndDelete(key any) (value any, loaded bool)
	Delete(key any)
	Range(f func(key, value any) bool)
}

var _ mapI = (*sync.Map)(nil)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "syncmapbench: "+format+"\n", args...)
	os.Exit(1)
}

// ---- keys and random numbers ----------------------------------------------

func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	z := x
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

var zeros32 = func() (b [32]byte) {
	for i := range b {
		b[i] = '0'
	}
	return
}()

// str32 returns k (>= 0) in decimal, left-padded with '0' to 32 bytes.
func str32(k int) string {
	b := zeros32
	for p := len(b) - 1; k > 0 && p >= 0; p-- {
		b[p] = byte('0' + k%10)
		k /= 10
	}
	return string(b[:]) // allocates the 32 bytes
}

// keyer turns a key number into the map key of the selected key type.
type keyer bool

const (
	intKeys keyer = false
	strKeys keyer = true
)

func (s keyer) key(k int) any {
	if s {
		return str32(k)
	}
	return k
}

func (s keyer) String() string {
	if s {
		return "str32"
	}
	return "int"
}

// ---- workers ----------------------------------------------------------------

// worker is one goroutine's state: the PB-style iteration budget, its key
// counter, its rng and its latency samples. Each is allocated on its own, padded
// so that two workers' hot fields never share a cache line.
type worker struct {
	_ [64]byte
	keyer
	m   mapI
	id  int
	i   int // first value of the per-worker counter: id*N
	K   int // -keys (additional shapes only)
	rng uint64

	// PB.Next state.
	claimed *uint64 // shared: iterations handed out so far
	total   uint64  // N
	grain   uint64
	cache   uint64 // iterations left in the current grain
	done    uint64 // iterations this worker was handed

	samples []uint32 // write-op latencies in ns, saturated at 2^32-1
	maxLat  int64
	_       [64]byte
}

// next reports whether the worker should do one more iteration.
func (w *worker) next() bool {
	if w.cache == 0 {
		end := atomic.AddUint64(w.claimed, w.grain)
		switch {
		case end <= w.total:
			w.cache = w.grain
		case end < w.total+w.grain:
			w.cache = w.total + w.grain - end
		default:
			return false
		}
		w.done += w.cache
	}
	w.cache--
	return true
}

// rand is xorshift64*.
func (w *worker) rand() uint64 {
	w.rng ^= w.rng >> 12
	w.rng ^= w.rng << 25
	w.rng ^= w.rng >> 27
	return w.rng * 0x2545F4914F6CDD1D
}

func (w *worker) fail(format string, args ...any) {
	die("worker %d: "+format, append([]any{w.id}, args...)...)
}

func (w *worker) record(start time.Time) {
	ns := time.Since(start).Nanoseconds()
	if ns > w.maxLat {
		w.maxLat = ns
	}
	if ns > math.MaxUint32 {
		ns = math.MaxUint32
	}
	w.samples = append(w.samples, uint32(ns))
}

// timedMap is what workers use with -latency: it times each write operation
// into the worker's samples and passes Load and Range straight through. Without
// -latency workers call the *sync.Map itself, through the same interface.
type timedMap struct {
	m *sync.Map
	w *worker
}

func (t timedMap) Load(k any) (any, bool)            { return t.m.Load(k) }
func (t timedMap) Range(f func(key, value any) bool) { t.m.Range(f) }

func (t timedMap) Store(k, v any) {
	start := time.Now()
	t.m.Store(k, v)
	t.w.record(start)
}

func (t timedMap) LoadOrStore(k, v any) (any, bool) {
	start := time.Now()
	a, l := t.m.LoadOrStore(k, v)
	t.w.record(start)
	return a, l
}

func (t timedMap) LoadAndDelete(k any) (any, bool) {
	start := time.Now()
	v, l := t.m.LoadAndDelete(k)
	t.w.record(start)
	return v, l
}

func (t timedMap) Delete(k any) {
	start := time.Now()
	t.m.Delete(k)
	t.w.record(start)
}

// ---- shapes -----------------------------------------------------------------

type shape struct {
	name string
	// takesKeys: an additional shape, run once per -keys value; the Go
	// shapes print keys=0.
	takesKeys bool
	// latencyOnly: included in "all" only with -latency.
	latencyOnly bool
	setup       func(m mapI, kk keyer, K int)
	body        func(w *worker)
}

// fillPrimed is the Go benchmarks' setup: LoadOrStore(k, k) for k < n, then
// the prime loop that gets the map into its all-in-read steady state.
func fillPrimed(m mapI, kk keyer, n int) {
	for k := 0; k < n; k++ {
		m.LoadOrStore(kk.key(k), k)
	}
	prime(m, kk, n)
}

// prime is Load(j % space) for j < 2*space. With everything in the dirty map,
// misses reach len(dirty) within it and the dirty map is promoted.
func prime(m mapI, kk keyer, space int) {
	for j := 0; j < 2*space; j++ {
		m.Load(kk.key(j % space))
	}
}

func storeRange(m mapI, kk keyer, n int) {
	for k := 0; k < n; k++ {
		m.Store(kk.key(k), k)
	}
}

func storeZero(m mapI, kk keyer, _ int) { m.LoadOrStore(kk.key(0), 0) }

var shapes = []*shape{
	{
		name:  "LoadMostlyHits",
		setup: func(m mapI, kk keyer, _ int) { fillPrimed(m, kk, 1023) },
		body: func(w *worker) {
			const hits, misses = 1023, 1
			m := w.m
			for i := w.i; w.next(); i++ {
				m.Load(w.key(i % (hits + misses)))
			}
		},
	},
	{
		name:  "LoadMostlyMisses",
		setup: func(m mapI, kk keyer, _ int) { fillPrimed(m, kk, 1) },
		body: func(w *worker) {
			const hits, misses = 1, 1023
			m := w.m
			for i := w.i; w.next(); i++ {
				m.Load(w.key(i % (hits + misses)))
			}
		},
	},
	{
		name:  "LoadOrStoreBalanced",
		setup: func(m mapI, kk keyer, _ int) { fillPrimed(m, kk, 128) },
		body: func(w *worker) {
			const hits, misses = 128, 128
			m := w.m
			for i := w.i; w.next(); i++ {
				if j := i % (hits + misses); j < hits {
					if _, loaded := m.LoadOrStore(w.key(j), i); !loaded {
						w.fail("LoadOrStoreBalanced: unexpected miss for %v", j)
					}
				} else {
					if v, loaded := m.LoadOrStore(w.key(i), i); loaded {
						w.fail("LoadOrStoreBalanced: failed to store %v: existing value %v", i, v)
					}
				}
			}
		},
	},
	{
		name:  "LoadOrStoreUnique",
		setup: func(mapI, keyer, int) {},
		body: func(w *worker) {
			m := w.m
			for i := w.i; w.next(); i++ {
				m.LoadOrStore(w.key(i), i)
			}
		},
	},
	{
		name:  "LoadOrStoreCollision",
		setup: storeZero,
		body: func(w *worker) {
			m := w.m
			for w.next() {
				m.LoadOrStore(w.key(0), 0)
			}
		},
	},
	{
		name:  "LoadAndDeleteBalanced",
		setup: func(m mapI, kk keyer, _ int) { fillPrimed(m, kk, 128) },
		body: func(w *worker) {
			const hits, misses = 128, 128
			m := w.m
			for i := w.i; w.next(); i++ {
				if j := i % (hits + misses); j < hits {
					m.LoadAndDelete(w.key(j))
				} else {
					m.LoadAndDelete(w.key(i))
				}
			}
		},
	},
	{
		name:  "LoadAndDeleteUnique",
		setup: func(mapI, keyer, int) {},
		body: func(w *worker) {
			m := w.m
			for i := w.i; w.next(); i++ {
				m.LoadAndDelete(w.key(i))
			}
		},
	},
	{
		name:  "LoadAndDeleteCollision",
		setup: storeZero,
		body: func(w *worker) {
			m := w.m
			for w.next() {
				m.LoadAndDelete(w.key(0))
			}
		},
	},
	{
		name:  "Range",
		setup: func(m mapI, kk keyer, _ int) { storeRange(m, kk, 1<<10) },
		body: func(w *worker) {
			m := w.m
			for w.next() {
				m.Range(func(_, _ any) bool { return true })
			}
		},
	},
	{
		name:  "AdversarialAlloc",
		setup: func(mapI, keyer, int) {},
		body: func(w *worker) {
			m := w.m
			var stores, loadsSinceStore int64
			for i := w.i; w.next(); i++ {
				m.Load(w.key(i))
				if loadsSinceStore++; loadsSinceStore > stores {
					m.LoadOrStore(w.key(i), stores)
					loadsSinceStore = 0
					stores++
				}
			}
		},
	},
	{
		name:  "AdversarialDelete",
		setup: func(m mapI, kk keyer, _ int) { storeRange(m, kk, 1<<10) },
		body: func(w *worker) {
			const mapSize = 1 << 10
			m := w.m
			for i := w.i; w.next(); i++ {
				m.Load(w.key(i))
				if i%mapSize == 0 {
					m.Range(func(k, _ any) bool {
						m.Delete(k)
						return false
					})
					m.Store(w.key(i), i)
				}
			}
		},
	},
	{
		name:  "DeleteCollision",
		setup: storeZero,
		body: func(w *worker) {
			m := w.m
			for w.next() {
				m.Delete(w.key(0))
			}
		},
	},
	{
		name:      "ReadMostly99",
		takesKeys: true,
		setup:     readMostlySetup,
		body:      func(w *worker) { readMostly(w, 990) },
	},
	{
		name:      "ReadMostly90",
		takesKeys: true,
		setup:     readMostlySetup,
		body:      func(w *worker) { readMostly(w, 900) },
	},
	{
		name:      "Churn",
		takesKeys: true,
		setup: func(m mapI, kk keyer, K int) {
			for k := 0; k < 2*K; k += 2 {
				m.Store(kk.key(k), k)
			}
			prime(m, kk, 2*K)
		},
		body: func(w *worker) {
			m := w.m
			space := uint64(2 * w.K)
			for w.next() {
				r := w.rand()
				k := int((r >> 8) % space)
				switch r % 10 {
				case 0, 1:
					m.Load(w.key(k))
				case 2, 3, 4, 5:
					m.Store(w.key(k), k)
				default: // 6..9
					m.Delete(w.key(k))
				}
			}
		},
	},
	{
		name: "InFlight",
		setup: func(m mapI, kk keyer, K int) {
			m.Store(kk.key(0), 0)
			prime(m, kk, 1)
		},
		body: func(w *worker) {
			m := w.m
			for i := w.i; w.next(); i++ {
				k := 1<<40 + i
				m.Store(w.key(k), k)
				if _, ok := m.Load(w.key(k)); !ok {
					w.fail("InFlight: key %d missing right after its Store", k)
				}
				m.Delete(w.key(k))
				m.Load(w.key(0))
			}
		},
	},
	{
		name:        "StoreLatency",
		takesKeys:   true,
		latencyOnly: true,
		setup:       readMostlySetup,
		body: func(w *worker) {
			m := w.m
			period := w.K/16 + 1
			c := 0
			for i := w.i; w.next(); i++ {
				k := w.K + i
				m.Load(w.key(k))
				if c++; c == period {
					c = 0
					if v, loaded := m.LoadOrStore(w.key(k), k); loaded {
						w.fail("StoreLatency: key %d was already present (value %v)", k, v)
					}
				}
			}
		},
	},
}

func readMostlySetup(m mapI, kk keyer, K int) {
	storeRange(m, kk, K)
	prime(m, kk, K)
}

func readMostly(w *worker, loadPermille uint64) {
	m := w.m
	K := uint64(w.K)
	for w.next() {
		r := w.rand()
		k := int((r >> 8) % K)
		if r%1000 < loadPermille {
			m.Load(w.key(k))
		} else if r%2 == 0 {
			m.Store(w.key(k), k)
		} else {
			m.Delete(w.key(k))
		}
	}
}

// ---- running ----------------------------------------------------------------

type config struct {
	kk       keyer
	K        int
	threads  int
	seed     uint64
	latency  bool
	grain    uint64 // fixed grain, 0 = adaptive
	grainMax uint64
}

type runResult struct {
	n       int
	elapsed time.Duration
	workers []*worker
}

// runOnce does one timed run of sh with a budget of n iterations.
func runOnce(sh *shape, cfg *config, n int, grain uint64) runResult {
	runtime.GOMAXPROCS(cfg.threads)
	runtime.GC()
	m := new(sync.Map)
	sh.setup(m, cfg.kk, cfg.K)

	var claimed uint64
	ws := make([]*worker, cfg.threads)
	for id := range ws {
		ws[id] = &worker{
			keyer:   cfg.kk,
			m:       m,
			id:      id,
			i:       id * n,
			K:       cfg.K,
			rng:     splitmix64(uint64(id) + 1 + cfg.seed),
			claimed: &claimed,
			total:   uint64(n),
			grain:   grain,
		}
		if cfg.latency {
			ws[id].m = timedMap{m: m, w: ws[id]}
		}
	}

	var wg sync.WaitGroup
	wg.Add(len(ws))
	start := time.Now()
	for _, w := range ws {
		go func(w *worker) {
			defer wg.Done()
			sh.body(w)
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var sum uint64
	for _, w := range ws {
		sum += w.done
	}
	if sum != uint64(n) || claimed < uint64(n) {
		die("%s: workers did %d iterations of a budget of %d", sh.name, sum, n)
	}
	runtime.KeepAlive(m)
	return runResult{n: n, elapsed: elapsed, workers: ws}
}

// adaptiveGrain is testing's ~100us-of-work grain from the previous run.
func adaptiveGrain(cfg *config, prev *runResult) uint64 {
	if cfg.grain > 0 {
		return cfg.grain
	}
	if prev == nil {
		return cfg.grainMax
	}
	g := uint64(0)
	if prev.n > 0 && prev.elapsed > 0 {
		g = 1e5 * uint64(prev.n) / uint64(prev.elapsed.Nanoseconds())
	}
	if g < 1 {
		g = 1
	}
	if g > cfg.grainMax {
		g = cfg.grainMax
	}
	return g
}

// bench runs sh with a fixed n, or with testing.B's search for the n that
// takes at least target, and returns the final run.
func bench(sh *shape, cfg *config, fixedN int, target time.Duration) runResult {
	if fixedN > 0 {
		return runOnce(sh, cfg, fixedN, adaptiveGrain(cfg, nil))
	}
	// run1: N = 1; with no previous run testing's grain is 1.
	first := cfg.grain
	if first == 0 {
		first = 1
	}
	res := runOnce(sh, cfg, 1, first)
	for n := int64(1); res.elapsed < target && n < 1e9; {
		last := n
		prevNs := res.elapsed.Nanoseconds()
		if prevNs <= 0 {
			prevNs = 1
		}
		n = target.Nanoseconds() * int64(res.n) / prevNs
		n += n / 5
		if n > 100*last {
			n = 100 * last
		}
		if n < last+1 {
			n = last + 1
		}
		if n > 1e9 {
			n = 1e9
		}
		prev := res
		res = runOnce(sh, cfg, int(n), adaptiveGrain(cfg, &prev))
	}
	return res
}

// radixSort32 sorts a in place (LSD, two 16-bit passes); sort.Slice is too
// slow for the tens of millions of samples a latency run can collect.
func radixSort32(a []uint32) {
	tmp := make([]uint32, len(a))
	src, dst := a, tmp
	for shift := 0; shift < 32; shift += 16 {
		var count [1 << 16]int
		for _, v := range src {
			count[(v>>shift)&0xFFFF]++
		}
		pos := 0
		for d, c := range count {
			count[d] = pos
			pos += c
		}
		for _, v := range src {
			d := (v >> shift) & 0xFFFF
			dst[count[d]] = v
			count[d]++
		}
		src, dst = dst, src
	}
	// Two passes: the sorted data is back in a.
}

// rank returns the nearest-rank percentile num/den of sorted s.
func rank(s []uint32, num, den int) uint32 {
	idx := (len(s)*num+den-1)/den - 1
	if idx < 0 {
		idx = 0
	}
	return s[idx]
}

// ---- flags and main -------------------------------------------------------------

func parseInts(name, s string, min int) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64) // also accepts 1e6
		if err != nil || v != float64(int(v)) || int(v) < min {
			die("bad -%s value %q (want integers >= %d)", name, f, min)
		}
		out = append(out, int(v))
	}
	if len(out) == 0 {
		die("-%s: no values", name)
	}
	return out
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

func main() {
	benchFlag := flag.String("bench", "all", "comma-separated shape names, or all")
	threadsFlag := flag.String("threads", strconv.Itoa(runtime.GOMAXPROCS(0)), "comma-separated worker counts (GOMAXPROCS = workers)")
	nFlag := flag.Int("n", 0, "total iterations per run (0: find N with -time)")
	timeFlag := flag.Duration("time", time.Second, "target duration of the reported run when -n is 0")
	keysFlag := flag.String("keys", "1000", "comma-separated key-space sizes K for the additional shapes")
	keytypeFlag := flag.String("keytype", "int", "comma-separated key types: int, str32")
	reps := flag.Int("reps", 1, "repetitions of every benchmark (each with its own N search)")
	seed := flag.Uint64("seed", 1, "seed for the per-worker rng of the additional shapes")
	latency := flag.Bool("latency", false, "also time every write op and print LATENCY lines")
	grain := flag.Uint64("grain", 0, "fixed iterations per grab of the shared counter (0: adaptive, as testing)")
	grainMax := flag.Uint64("grain-max", 1000, "cap of the adaptive grain (Go's testing uses 10000)")
	flag.Parse()

	threads := parseInts("threads", *threadsFlag, 1)
	keys := parseInts("keys", *keysFlag, 1)
	if *nFlag < 0 || *reps < 1 || *grainMax < 1 {
		die("-n must be >= 0, -reps and -grain-max >= 1")
	}
	var kts []keyer
	for _, f := range strings.Split(*keytypeFlag, ",") {
		switch strings.TrimSpace(f) {
		case "int":
			kts = append(kts, intKeys)
		case "str32":
			kts = append(kts, strKeys)
		default:
			die("unknown -keytype %q (int, str32)", f)
		}
	}
	var sel []*shape
	for _, f := range strings.Split(*benchFlag, ",") {
		f = strings.TrimSpace(f)
		found := false
		for _, sh := range shapes {
			if f == "all" && (!sh.latencyOnly || *latency) || f == sh.name {
				sel = append(sel, sh)
				found = true
			}
		}
		if !found {
			var names []string
			for _, sh := range shapes {
				names = append(names, sh.name)
			}
			die("unknown -bench %q (known: %s, all)", f, strings.Join(names, ","))
		}
	}

	fmt.Printf("# %s GOMAXPROCS=%s NumCPU=%d %s/%s\n", runtime.Version(),
		joinInts(threads), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)

	for _, kk := range kts {
		for _, sh := range sel {
			ks := []int{0}
			if sh.takesKeys {
				ks = keys
			}
			for _, K := range ks {
				for _, T := range threads {
					cfg := &config{kk: kk, K: K, threads: T, seed: *seed,
						latency: *latency, grain: *grain, grainMax: *grainMax}
					for rep := 0; rep < *reps; rep++ {
						res := bench(sh, cfg, *nFlag, *timeFlag)
						fmt.Printf("RESULT impl=go-sync.Map bench=%s keytype=%s keys=%d threads=%d n=%d ns_per_op=%.3f\n",
							sh.name, kk, K, T, res.n, float64(res.elapsed.Nanoseconds())/float64(res.n))
						if *latency {
							printLatency(sh, kk, K, T, res.workers)
						}
					}
				}
			}
		}
	}
}

func printLatency(sh *shape, kk keyer, K, T int, ws []*worker) {
	total := 0
	var maxLat int64
	for _, w := range ws {
		total += len(w.samples)
		if w.maxLat > maxLat {
			maxLat = w.maxLat
		}
	}
	all := make([]uint32, 0, total)
	for _, w := range ws {
		all = append(all, w.samples...)
		w.samples = nil
	}
	var p50, p99, p999 uint32
	if len(all) > 0 {
		radixSort32(all)
		p50, p99, p999 = rank(all, 1, 2), rank(all, 99, 100), rank(all, 999, 1000)
	}
	fmt.Printf("LATENCY impl=go-sync.Map bench=%s keytype=%s keys=%d threads=%d ops=%d p50=%d p99=%d p999=%d max=%d\n",
		sh.name, kk, K, T, len(all), p50, p99, p999, maxLat)
}
