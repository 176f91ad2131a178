// Command pause is benches/harness.c's pause workload in Go, for
// scripts/bench.sh: LIVE MiB (the first argument, default 256) of 64-byte
// records in a chained hash table, built once and kept live, then a request
// loop. Each request allocates a 16 KiB buffer and pins it with
// runtime.Pinner, fills it, allocates 40 small objects (39 request-local
// 32-byte nodes and one 64-byte record that replaces a record of the table),
// looks up 4 keys, unpins. Same keys, sizes and request count as the C
// harness. It prints the harness's RESULT lines, implementation "go".
//
// The longest pause is the largest entry of runtime.MemStats.PauseNs over the
// whole process (building included, as in the harness): for each cycle, the
// sum of its stop-the-world pauses, so an upper bound of the longest single
// one. Environment: BENCH_PAUSE_REQUESTS overrides the request count.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"syscall"
	"time"
)

type rec struct {
	next *rec
	key  uint64
	val  [6]uint64
} // 64 bytes

type robj struct {
	next *robj
	r    *rec
	a, b uint64
} // 32 bytes

const (
	bufSize = 16384
	small   = 40
	lookups = 4
)

var (
	buckets []*rec
	reqList *robj
	sink    uint64
)

func xorshift64(s *uint64) uint64 {
	x := *s
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*s = x
	return x
}

func bucketOf(key, mask uint64) uint64 { return (key * 0x9E3779B97F4A7C15 >> 20) & mask }

// findSlot returns the pointer that refers to the record with key.
func findSlot(mask, key uint64) **rec {
	pp := &buckets[bucketOf(key, mask)]
	for (*pp).key != key {
		pp = &(*pp).next
	}
	return pp
}

func main() {
	liveMiB := uint64(256)
	if len(os.Args) > 1 {
		if v, err := strconv.ParseUint(os.Args[1], 10, 64); err == nil && v > 0 {
			liveMiB = v
		}
	}
	nrec := (liveMiB << 20) / 64
	nb := uint64(1)
	for nb*4 < nrec {
		nb <<= 1
	}
	mask := nb - 1
	reqBytes := uint64(bufSize + (small-1)*32 + 64)
	requests := 4 * (liveMiB << 20) / reqBytes
	if v, err := strconv.ParseUint(os.Getenv("BENCH_PAUSE_REQUESTS"), 10, 64); err == nil && v > 0 {
		requests = v
	}

	t0 := time.Now()
	buckets = make([]*rec, nb)
	for k := uint64(0); k < nrec; k++ {
		r := &rec{key: k}
		r.val[0] = k
		h := bucketOf(k, mask)
		r.next = buckets[h]
		buckets[h] = r
	}
	build := time.Since(t0)

	lat := make([]time.Duration, requests)
	var p runtime.Pinner
	seed, sum := uint64(0x2545F4914F6CDD1D), uint64(0)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	t1 := time.Now()
	for i := uint64(0); i < requests; i++ {
		s := time.Now()
		buf := make([]byte, bufSize)
		p.Pin(&buf[0])
		buf[0] = byte(i) // the "kernel" writes the request (memset)
		for n := 1; n < bufSize; n *= 2 {
			copy(buf[n:], buf[:n])
		}
		var list *robj
		for j := 0; j < small-1; j++ {
			list = &robj{next: list, a: uint64(j)}
		}
		o := list
		for j := 0; j < lookups; j++ {
			r := *findSlot(mask, xorshift64(&seed)%nrec)
			o.r = r
			for w, v := range r.val {
				binary.LittleEndian.PutUint64(buf[64*j+8*w:], v)
			}
			sum += r.val[0]
			o = o.next
		}
		k := xorshift64(&seed) % nrec
		pp := findSlot(mask, k)
		nr := &rec{key: k, val: (*pp).val, next: (*pp).next}
		nr.val[1] = i
		*pp = nr
		reqList = list
		sum += uint64(buf[i%bufSize]) + list.a
		p.Unpin()
		lat[i] = time.Since(s)
	}
	loop := time.Since(t1)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	reqList = nil
	sink = sum

	count := uint64(0)
	for _, r := range buckets {
		for ; r != nil; r = r.next {
			count++
		}
	}
	if count != nrec {
		fmt.Fprintf(os.Stderr, "pause: the table lost records: %d of %d\n", count, nrec)
		os.Exit(1)
	}
	var maxPause uint64
	n := after.NumGC
	if n > uint32(len(after.PauseNs)) {
		n = uint32(len(after.PauseNs))
		fmt.Printf("INFO go pause: %d cycles, PauseNs keeps the last %d only\n", after.NumGC, n)
	}
	for i := uint32(0); i < n; i++ {
		if d := after.PauseNs[(after.NumGC-1-i)%uint32(len(after.PauseNs))]; d > maxPause {
			maxPause = d
		}
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	ms := func(d uint64) float64 { return float64(d) / 1e6 }
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "100 (default)"
	}
	fmt.Printf("INFO go pause: pause = runtime.MemStats.PauseNs (per cycle, its stop-the-world "+
		"pauses summed); GOMAXPROCS=%d GOGC=%s; %d records of 64 bytes in %d buckets; "+
		"the buffer is pinned with runtime.Pinner; %d requests of %d bytes\n",
		runtime.GOMAXPROCS(0), gogc, nrec, nb, requests, reqBytes)
	fmt.Printf("RESULT go pause%d_max_pause %.3f ms num_gc=%d loop_gc=%d loop_pause_total_ms=%.3f\n",
		liveMiB, ms(maxPause), after.NumGC, after.NumGC-before.NumGC,
		ms(after.PauseTotalNs-before.PauseTotalNs))
	fmt.Printf("RESULT go pause%d_max_request %.3f ms p99_us=%.1f p999_us=%.1f requests=%d\n",
		liveMiB, ms(uint64(lat[requests-1])), float64(lat[requests*99/100])/1e3,
		float64(lat[requests*999/1000])/1e3, requests)
	fmt.Printf("RESULT go pause%d_total %.3f ms build_ms=%.1f\n", liveMiB, ms(uint64(loop)),
		float64(build)/1e6)
	fmt.Printf("RESULT go pause%d_peak_rss %d KiB\n", liveMiB, ru.Maxrss)
}
