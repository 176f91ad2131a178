// Go reference figures for gcpin's benchmark report (scripts/bench.sh).
//
// The same workloads as benches/harness.c: runtime.Pinner pin+unpin (one
// fresh object per iteration, tiny, pinned twice, from parallel goroutines),
// a batch of 1000 pins, allocation of small objects, and one runtime.GC()
// with 100 MiB live in 32-byte nodes. runtime.IsPinned is not exported; the
// report takes those figures from the standard library's own runtime tests.
package gcpinbench

import (
	"runtime"
	"sync"
	"testing"
)

// payload is 24 bytes, the size gcpin's harness pins (Go's runtime test uses
// the same shape).
type payload struct {
	a, b, c int64
}

func BenchmarkPinUnpin(b *testing.B) {
	var p runtime.Pinner
	for i := 0; i < b.N; i++ {
		p.Pin(new(payload))
		p.Unpin()
	}
}

func BenchmarkPinUnpinTiny(b *testing.B) {
	var p runtime.Pinner
	for i := 0; i < b.N; i++ {
		p.Pin(new(bool))
		p.Unpin()
	}
}

func BenchmarkPinUnpinDouble(b *testing.B) {
	var p runtime.Pinner
	for i := 0; i < b.N; i++ {
		o := new(payload)
		p.Pin(o)
		p.Pin(o)
		p.Unpin()
	}
}

func BenchmarkPinUnpinParallel(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		var p runtime.Pinner
		for pb.Next() {
			p.Pin(new(payload))
			p.Unpin()
		}
	})
}

func BenchmarkPinUnpinParallelTiny(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		var p runtime.Pinner
		for pb.Next() {
			p.Pin(new(bool))
			p.Unpin()
		}
	})
}

func BenchmarkPinUnpinParallelDouble(b *testing.B) {
	b.RunParallel(func(pb *testing.PB) {
		var p runtime.Pinner
		for pb.Next() {
			o := new(payload)
			p.Pin(o)
			p.Pin(o)
			p.Unpin()
		}
	})
}

const batchLen = 1000

func BenchmarkBatch1000(b *testing.B) {
	objs := make([]*payload, batchLen)
	for i := range objs {
		objs[i] = new(payload)
	}
	var p runtime.Pinner
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for _, o := range objs {
			p.Pin(o)
		}
		p.Unpin()
	}
}

func BenchmarkBatch1000Double(b *testing.B) {
	objs := make([]*payload, batchLen)
	for i := range objs {
		objs[i] = new(payload)
	}
	var p runtime.Pinner
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for _, o := range objs {
			p.Pin(o)
			p.Pin(o)
		}
		p.Unpin()
	}
}

func BenchmarkBatch1000Tiny(b *testing.B) {
	objs := make([]*bool, batchLen)
	for i := range objs {
		objs[i] = new(bool)
	}
	var p runtime.Pinner
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for _, o := range objs {
			p.Pin(o)
		}
		p.Unpin()
	}
}

// Allocation: the pointer-holding types are scanned by Go's collector, the
// byte array is noscan, as gc_alloc and gc_alloc_noscan.
type scan16 struct{ p, q *int }
type scan64 struct{ p [8]*int }
type scan1k struct{ p [128]*int }

var (
	sinkScan16   *scan16
	sinkScan64   *scan64
	sinkScan1k   *scan1k
	sinkNoscan16 *[16]byte
)

func BenchmarkAlloc16(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sinkScan16 = new(scan16)
	}
}

func BenchmarkAlloc64(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sinkScan64 = new(scan64)
	}
}

func BenchmarkAlloc1K(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sinkScan1k = new(scan1k)
	}
}

func BenchmarkAlloc16Noscan(b *testing.B) {
	for i := 0; i < b.N; i++ {
		sinkNoscan16 = new([16]byte)
	}
}

// node is 32 bytes, like the C harness's.
type node struct {
	left, right *node
	value, pad  uint64
}

var (
	liveOnce sync.Once
	liveRoot *node
)

const liveNodes = (100 << 20) / 32

func buildCount(count uint64, next *uint64) *node {
	if count == 0 {
		return nil
	}
	n := &node{value: *next}
	*next++
	rest := count - 1
	n.left = buildCount(rest/2, next)
	n.right = buildCount(rest-rest/2, next)
	return n
}

func countNodes(n *node) uint64 {
	var c uint64
	for n != nil {
		c += 1 + countNodes(n.left)
		n = n.right
	}
	return c
}

func BenchmarkGCFull100MiB(b *testing.B) {
	liveOnce.Do(func() {
		var v uint64
		liveRoot = buildCount(liveNodes, &v)
		runtime.GC()
	})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runtime.GC()
	}
	b.StopTimer()
	if c := countNodes(liveRoot); c != liveNodes {
		b.Fatalf("live tree has %d nodes, want %d", c, liveNodes)
	}
}
