// Command go-bench is the Go peer of the weft benchmark suite.
//
// Usage: go-bench <workload> [--workers N]
//
// Every workload is the one defined in the benchmark spec (W1..W15),
// written the way a Go programmer would write it: goroutines, buffered channels,
// select, sync.WaitGroup and time.Sleep. GOMAXPROCS is set to N. The process
// prints exactly two lines: elapsed_ms=<float> (timed from just before the
// workload starts to its end) and check=<value>, a checksum computed from the
// work that was actually done.
//
// Exit status 2 means "unknown / not implemented workload" so the runner can
// tell it apart from a crash.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	spawnCount        = 1_000_000
	yieldTasks        = 1_000
	yieldsPerTask     = 1_000
	pingPairs         = 100
	pingsPerPair      = 10_000
	chainLen          = 1_000_000
	fibN              = 27
	channelItems      = 10_000_000
	channelCap        = 1024
	mpscProducers     = 4
	selectPerProducer = 1_000_000
	selectCap         = 128
	pipelineItems     = 100_000
	pipelineInFlight  = 64
	timerTasks        = 1_000_000
	mutexTasks        = 100
	mutexLocksPerTask = 10_000
)

// W15
const (
	broadcastReceivers = 8
	broadcastItems     = 1_000_000
	broadcastCap       = 1024
)

// work is the CPU-bound step of W10: 2,000 rounds of xorshift + multiply.
//
//go:noinline
func work(x uint64) uint64 {
	h := x + 0x9E3779B97F4A7C15
	for i := 0; i < 2000; i++ {
		h ^= h << 13
		h ^= h >> 7
		h ^= h << 17
		h *= 0x2545F4914F6CDD1D
	}
	return h
}

// countdown is the "count down, last one signals" state of W1, W2 and W11.
// decremented is what the checksum reports, so a lost or duplicated
// goroutine shows up as a wrong check instead of a hang or a silent pass.
type countdown struct {
	remaining   int64
	decremented int64
	done        chan struct{}
}

func newCountdown(n int64) *countdown {
	return &countdown{remaining: n, done: make(chan struct{})}
}

func (c *countdown) hit() {
	atomic.AddInt64(&c.decremented, 1)
	if atomic.AddInt64(&c.remaining, -1) == 0 {
		close(c.done)
	}
}

func (c *countdown) wait() int64 {
	<-c.done
	return atomic.LoadInt64(&c.decremented)
}

// W1: the spawns come from a goroutine, as in the other implementations
// where they come from inside a task.
func spawnMany() string {
	result := make(chan int64)
	go func() {
		cd := newCountdown(spawnCount)
		for i := 0; i < spawnCount; i++ {
			go cd.hit()
		}
		result <- cd.wait()
	}()
	return strconv.FormatInt(<-result, 10)
}

// W2: Go has no threads outside its scheduler; the main goroutine, locked
// to the process's main OS thread, is the closest thing to "a thread that is
// not a worker".
func spawnRemote() string {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cd := newCountdown(spawnCount)
	for i := 0; i < spawnCount; i++ {
		go cd.hit()
	}
	return strconv.FormatInt(cd.wait(), 10)
}

// W3
func yieldMany() string {
	var wg sync.WaitGroup
	var total int64
	wg.Add(yieldTasks)
	for t := 0; t < yieldTasks; t++ {
		go func() {
			defer wg.Done()
			var yielded int64
			for i := 0; i < yieldsPerTask; i++ {
				runtime.Gosched()
				yielded++
			}
			atomic.AddInt64(&total, yielded)
		}()
	}
	wg.Wait()
	return strconv.FormatInt(total, 10)
}

// W4
func pingPong() string {
	var wg sync.WaitGroup
	sums := make([]uint64, pingPairs)
	wg.Add(pingPairs)
	for p := 0; p < pingPairs; p++ {
		ping := make(chan uint64, 1)
		pong := make(chan uint64, 1)
		go func() {
			for i := range ping {
				pong <- i + 1
			}
		}()
		go func(p int) {
			defer wg.Done()
			var sum uint64
			for i := uint64(0); i < pingsPerPair; i++ {
				ping <- i
				sum += <-pong
			}
			close(ping)
			sums[p] = sum
		}(p)
	}
	wg.Wait()
	var total uint64
	for _, s := range sums {
		total += s
	}
	return strconv.FormatUint(total, 10)
}

// W5: each goroutine starts its successor and returns; the completion
// channel travels down the chain with the index.
func chainLink(index int64, done chan<- int64) {
	if index == chainLen {
		done <- index
		return
	}
	go chainLink(index+1, done)
}

func chainedSpawn() string {
	done := make(chan int64, 1)
	go chainLink(1, done)
	return strconv.FormatInt(<-done, 10)
}

// W6: every n >= 2 starts two child goroutines and joins both.
func fib(n uint64) uint64 {
	if n < 2 {
		return n
	}
	var a, b uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { a = fib(n - 1); wg.Done() }()
	go func() { b = fib(n - 2); wg.Done() }()
	wg.Wait()
	return a + b
}

func fibForkJoin() string {
	result := make(chan uint64)
	go func() { result <- fib(fibN) }()
	return strconv.FormatUint(<-result, 10)
}

// W7 / W8: producers split 0..channelItems into contiguous ranges.
func channelThroughput(producers uint64) string {
	ch := make(chan uint64, channelCap)
	per := uint64(channelItems) / producers
	var wg sync.WaitGroup
	wg.Add(int(producers))
	for p := uint64(0); p < producers; p++ {
		go func(lo, hi uint64) {
			defer wg.Done()
			for v := lo; v < hi; v++ {
				ch <- v
			}
		}(p*per, (p+1)*per)
	}
	go func() { wg.Wait(); close(ch) }()
	result := make(chan uint64)
	go func() {
		var sum uint64
		for v := range ch {
			sum += v
		}
		result <- sum
	}()
	return strconv.FormatUint(<-result, 10)
}

// W9: a closed channel is set to nil so select stops considering it.
func selectTwo() string {
	a := make(chan uint64, selectCap)
	b := make(chan uint64, selectCap)
	go func() {
		for v := uint64(0); v < selectPerProducer; v++ {
			a <- v
		}
		close(a)
	}()
	go func() {
		for v := uint64(selectPerProducer); v < 2*selectPerProducer; v++ {
			b <- v
		}
		close(b)
	}()
	type result struct{ count, sum uint64 }
	out := make(chan result)
	go func() {
		var r result
		for a != nil || b != nil {
			select {
			case v, ok := <-a:
				if !ok {
					a = nil
					continue
				}
				r.count++
				r.sum += v
			case v, ok := <-b:
				if !ok {
					b = nil
					continue
				}
				r.count++
				r.sum += v
			}
		}
		out <- r
	}()
	r := <-out
	return fmt.Sprintf("count=%d sum=%d", r.count, r.sum)
}

func keepEven(sum, h uint64) uint64 {
	if h%2 == 0 {
		return sum + h
	}
	return sum
}

// W10, worker-pool form: pipelineInFlight goroutines pull items from a
// channel, so at most that many work() calls are in flight.
func pipelinePool() string {
	in := make(chan uint64, pipelineInFlight)
	out := make(chan uint64, pipelineInFlight)
	go func() {
		for x := uint64(0); x < pipelineItems; x++ {
			in <- x
		}
		close(in)
	}()
	var wg sync.WaitGroup
	wg.Add(pipelineInFlight)
	for w := 0; w < pipelineInFlight; w++ {
		go func() {
			defer wg.Done()
			for x := range in {
				out <- work(x)
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()
	var sum uint64
	for h := range out {
		sum = keepEven(sum, h)
	}
	return strconv.FormatUint(sum, 10)
}

// W10, per-item form: one goroutine per item, a semaphore channel bounds
// how many exist at once (the closest match to buffer_unordered).
func pipelinePerItem() string {
	sem := make(chan struct{}, pipelineInFlight)
	out := make(chan uint64, pipelineInFlight)
	go func() {
		for x := uint64(0); x < pipelineItems; x++ {
			sem <- struct{}{}
			go func(x uint64) {
				out <- work(x)
				<-sem
			}(x)
		}
	}()
	var sum uint64
	for i := 0; i < pipelineItems; i++ {
		sum = keepEven(sum, <-out)
	}
	return strconv.FormatUint(sum, 10)
}

// W10 baseline: the same map/filter/fold with no concurrency at all.
func pipelineSeq() string {
	var sum uint64
	for x := uint64(0); x < pipelineItems; x++ {
		sum = keepEven(sum, work(x))
	}
	return strconv.FormatUint(sum, 10)
}

// W11
func timers() string {
	result := make(chan int64)
	go func() {
		cd := newCountdown(timerTasks)
		x := uint64(0x2545F4914F6CDD1D)
		for i := 0; i < timerTasks; i++ {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			d := time.Duration(1+x%100) * time.Millisecond
			go func() {
				time.Sleep(d)
				cd.hit()
			}()
		}
		result <- cd.wait()
	}()
	return strconv.FormatInt(<-result, 10)
}

// W12
func mutexContended() string {
	var mu sync.Mutex
	var counter uint64
	var wg sync.WaitGroup
	wg.Add(mutexTasks)
	for i := 0; i < mutexTasks; i++ {
		go func() {
			defer wg.Done()
			for j := 0; j < mutexLocksPerTask; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return strconv.FormatUint(counter, 10)
}

// W15: Go has no broadcast channel; the sender sends every value to each
// receiver's own buffered channel in turn, so it waits for room whenever
// any receiver is a full buffer behind (nobody lags, nothing is dropped).
func broadcast() string {
	chans := make([]chan uint64, broadcastReceivers)
	sums := make(chan uint64, broadcastReceivers)
	for r := range chans {
		ch := make(chan uint64, broadcastCap)
		chans[r] = ch
		go func() {
			var sum uint64
			for v := range ch {
				sum += v
			}
			sums <- sum
		}()
	}
	go func() {
		for v := uint64(0); v < broadcastItems; v++ {
			for _, ch := range chans {
				ch <- v
			}
		}
		for _, ch := range chans {
			close(ch)
		}
	}()
	var total uint64
	for r := 0; r < broadcastReceivers; r++ {
		total += <-sums
	}
	return strconv.FormatUint(total, 10)
}

const (
	echoClients  = 50
	echoMsgs     = 10_000
	echoMsgLen   = 64
	streamConns  = 4
	streamBytes  = 64 << 20
	streamChunk  = 16 * 1024
	streamPeriod = 251
)

// echoServer is the server of W13 and W14: a listener on 127.0.0.1
// (ephemeral port) accepting conns connections, a goroutine per connection
// copying what it reads back until the peer closes its write side.
func echoServer(conns int) net.Addr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go func() {
		defer ln.Close()
		for i := 0; i < conns; i++ {
			c, err := ln.Accept()
			if err != nil {
				panic(err)
			}
			c.(*net.TCPConn).SetNoDelay(true)
			go func(c net.Conn) {
				defer c.Close()
				if _, err := io.Copy(c, c); err != nil {
					panic(err)
				}
			}(c)
		}
	}()
	return ln.Addr()
}

// W13: 50 clients, each 10,000 round trips of a 64-byte message, reading the
// full echo before sending the next. Check: bytes echoed.
func tcpEcho() string {
	addr := echoServer(echoClients).String()
	var total atomic.Uint64
	var wg sync.WaitGroup
	for id := 0; id < echoClients; id++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				panic(err)
			}
			defer c.Close()
			c.(*net.TCPConn).SetNoDelay(true) // Go's default, set to be explicit
			out := make([]byte, echoMsgLen)
			in := make([]byte, echoMsgLen)
			for i := 0; i < echoMsgs; i++ {
				for k := range out {
					out[k] = byte(id*7 + i)
				}
				if _, err := c.Write(out); err != nil {
					panic(err)
				}
				if _, err := io.ReadFull(c, in); err != nil {
					panic(err)
				}
				if !bytes.Equal(in, out) {
					panic("echo differs")
				}
				total.Add(echoMsgLen)
			}
		}(id)
	}
	wg.Wait()
	return strconv.FormatUint(total.Load(), 10)
}

// W14: 4 connections, each with a writer goroutine streaming 64 MiB in
// 16 KiB writes and a reader goroutine checking the echo byte for byte.
// Check: bytes verified.
func tcpStream() string {
	addr := echoServer(streamConns).String()
	var total atomic.Uint64
	var wg sync.WaitGroup
	for conn := 0; conn < streamConns; conn++ {
		// byte k = (k*131 + conn) mod 251; the slice from (i mod 251)
		// covers one chunk.
		pat := make([]byte, streamChunk+streamPeriod)
		for k := range pat {
			pat[k] = byte((k*131 + conn) % streamPeriod)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			panic(err)
		}
		tc := c.(*net.TCPConn)
		tc.SetNoDelay(true)
		go func() {
			for pos := 0; pos < streamBytes; pos += streamChunk {
				off := pos % streamPeriod
				if _, err := tc.Write(pat[off : off+streamChunk]); err != nil {
					panic(err)
				}
			}
			if err := tc.CloseWrite(); err != nil {
				panic(err)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer tc.Close()
			buf := make([]byte, streamChunk)
			pos := 0
			for {
				n, err := tc.Read(buf)
				if n > 0 {
					off := pos % streamPeriod
					if !bytes.Equal(buf[:n], pat[off:off+n]) {
						panic("stream differs")
					}
					pos += n
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					panic(err)
				}
			}
			if pos != streamBytes {
				panic("stream ended early")
			}
			total.Add(uint64(pos))
		}()
	}
	wg.Wait()
	return strconv.FormatUint(total.Load(), 10)
}

var workloads = map[string]func() string{
	"spawn_many":       spawnMany,
	"spawn_remote":     spawnRemote,
	"yield_many":       yieldMany,
	"ping_pong":        pingPong,
	"chained_spawn":    chainedSpawn,
	"fib_fork_join":    fibForkJoin,
	"mpsc_throughput":  func() string { return channelThroughput(mpscProducers) },
	"spsc_throughput":  func() string { return channelThroughput(1) },
	"select_two":       selectTwo,
	"pipeline":         pipelinePool,
	"pipeline_peritem": pipelinePerItem,
	"pipeline_seq":     pipelineSeq,
	"timers":           timers,
	"mutex_contended":  mutexContended,
	"broadcast":        broadcast,
	"tcp_echo":         tcpEcho,
	"tcp_stream":       tcpStream,
}

func usage() {
	names := make([]string, 0, len(workloads))
	for n := range workloads {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: go-bench <workload> [--workers N]\nworkloads: %s\n",
		strings.Join(names, " "))
	os.Exit(2)
}

func parseWorkers(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		usage()
	}
	return n
}

func main() {
	workload := ""
	workers := runtime.NumCPU()
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--workers":
			if i+1 >= len(args) {
				usage()
			}
			i++
			workers = parseWorkers(args[i])
		case strings.HasPrefix(a, "--workers="):
			workers = parseWorkers(strings.TrimPrefix(a, "--workers="))
		case workload == "" && !strings.HasPrefix(a, "-"):
			workload = a
		default:
			usage()
		}
	}
	if workload == "" {
		usage()
	}
	run, ok := workloads[workload]
	if !ok {
		fmt.Fprintf(os.Stderr, "go-bench: workload '%s' not implemented\n", workload)
		os.Exit(2)
	}
	runtime.GOMAXPROCS(workers)

	start := time.Now()
	check := run()
	elapsed := time.Since(start)

	fmt.Printf("elapsed_ms=%.3f\n", float64(elapsed.Nanoseconds())/1e6)
	fmt.Printf("check=%s\n", check)
}
