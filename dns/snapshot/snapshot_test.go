package snapshot

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/bulkhead-dev/bulkhead/dns/internal/fixture"
)

// generation builds a State whose every object carries gen, so a mix of two writes is visible.
func generation(gen, services int) *State {
	st := &State{SyncedAt: time.Unix(int64(gen), 0).UTC()}
	for i := range services {
		name := fmt.Sprintf("g%d-svc-%d", gen, i)
		st.Services = append(st.Services, fixture.ClusterIPService("lab", name, []string{"10.96.0.1"}, fixture.Port{Name: "http", Port: 80}))
		st.EndpointSlices = append(st.EndpointSlices, fixture.Slice("lab", name, name+"-x", discoveryv1.AddressTypeIPv4, nil,
			fixture.Endpoint{IP: "10.1.0.1"}))
	}
	return st
}

// consistentGeneration checks that st is one whole generation and returns it.
func consistentGeneration(t *testing.T, st *State) int {
	t.Helper()
	gen := int(st.SyncedAt.Unix())
	want := 50 + gen%50
	if len(st.Services) != want || len(st.EndpointSlices) != want {
		t.Fatalf("generation %d has %d services and %d slices, want %d", gen, len(st.Services), len(st.EndpointSlices), want)
	}
	for i, s := range st.Services {
		if s.Name != fmt.Sprintf("g%d-svc-%d", gen, i) {
			t.Fatalf("generation %d holds service %s", gen, s.Name)
		}
	}
	return gen
}

func TestWriteThenReadReturnsTheSameState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	if err := Write(path, generation(7, 57)); err != nil {
		t.Fatal(err)
	}
	st, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if gen := consistentGeneration(t, st); gen != 7 {
		t.Fatalf("read generation %d", gen)
	}
	if st.Services[0].Spec.Ports[0].Name != "http" || *st.EndpointSlices[0].Endpoints[0].Conditions.Ready != true {
		t.Fatalf("fields lost: %+v", st.Services[0].Spec)
	}
}

func TestMissingSnapshotIsNotExist(t *testing.T) {
	_, err := Read(filepath.Join(t.TempDir(), "none"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err %v, want not-exist", err)
	}
}

func TestCorruptOrForeignSnapshotIsRejectedWithAReason(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := Write(good, generation(3, 53)); err != nil {
		t.Fatal(err)
	}
	valid, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), valid...)) }
	for _, tc := range []struct {
		name, reason string
		data         []byte
	}{
		{"empty file", "length", nil},
		{"foreign file", "magic", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n" + string(valid[:40]))},
		{"future version", "version", mutate(func(b []byte) []byte { b[11] = 9; return b })},
		{"flipped payload byte", "checksum", mutate(func(b []byte) []byte { b[len(b)/2] ^= 0x20; return b })},
		{"torn payload", "length", valid[:len(valid)-10]},
		{"trailing bytes", "length", append(append([]byte(nil), valid...), '\n')},
		{"absurd length", "length", mutate(func(b []byte) []byte { b[12] = 0x7f; return b })},
		{"checksum of garbage", "decode", func() []byte {
			st := filepath.Join(dir, "garbage")
			writeRaw(t, st, []byte("not json"))
			b, _ := os.ReadFile(st)
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad")
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := Read(path)
			var corrupt *CorruptError
			if !errors.As(err, &corrupt) || corrupt.Reason != tc.reason || st != nil {
				t.Fatalf("state %v err %v, want a CorruptError with reason %s", st, err, tc.reason)
			}
		})
	}
}

// writeRaw writes a valid header around an arbitrary payload.
func writeRaw(t *testing.T, path string, payload []byte) {
	t.Helper()
	if err := Write(path, &State{}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	header := b[:headerLen]
	sum := sha256Sum(payload)
	copy(header[20:], sum)
	header[12], header[13], header[14], header[15] = 0, 0, 0, 0
	header[16], header[17], header[18], header[19] = byte(len(payload)>>24), byte(len(payload)>>16), byte(len(payload)>>8), byte(len(payload))
	if err := os.WriteFile(path, append(header, payload...), 0o600); err != nil {
		t.Fatal(err)
	}
}

const writerEnv = "BULKHEAD_SNAPSHOT_TEST_WRITER"

// TestMain turns the test binary into a snapshot writer when re-executed by the kill test: it
// writes generation after generation and prints each one's number once Write has returned.
func TestMain(m *testing.M) {
	if path := os.Getenv(writerEnv); path != "" {
		start, _ := strconv.Atoi(os.Getenv(writerEnv + "_START"))
		for gen := start; ; gen++ {
			if err := Write(path, generation(gen, 50+gen%50)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			fmt.Println(gen)
		}
	}
	os.Exit(m.Run())
}

func TestKillDuringWritesLeavesACompleteSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 40 {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+path, fmt.Sprintf("%s_START=%d", writerEnv, (round+1)*100000))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after 2–6 completed writes, at a random point of the next write (as long as the
		// last one took): wherever it lands, the write before it must be on disk.
		lines := bufio.NewScanner(out)
		completed := -1
		var previous, loop time.Duration
		begun := time.Now()
		for range 2 + rand.IntN(5) {
			if !lines.Scan() {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: the writer stopped before completing a write: %v", round, lines.Err())
			}
			if completed, err = strconv.Atoi(lines.Text()); err != nil {
				t.Fatalf("round %d: writer printed %q", round, lines.Text())
			}
			now := time.Since(begun)
			loop, previous = now-previous, now
		}
		time.Sleep(rand.N(loop + 1))
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		go io.Copy(io.Discard, out) // what the writer printed after the kill was sent
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: writer ended on its own (%v) before the kill", round, err)
		}
		st, err := Read(path)
		if err != nil {
			t.Fatalf("round %d: after kill -9 the snapshot is unreadable: %v", round, err)
		}
		// The snapshot holds the last completed write, or a later one the kill did not stop in
		// time; each round's generations are above every earlier round's.
		if gen := consistentGeneration(t, st); gen < completed {
			t.Fatalf("round %d: snapshot holds generation %d after the writer completed %d", round, gen, completed)
		}
	}
	temps, _ := filepath.Glob(path + tempSuffix + "*")
	t.Logf("40 writers killed during a write; %d of the kills left a temp file behind", len(temps))
	if err := RemoveStaleTemps(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("%d files left after removing stale temps, want only the snapshot", len(entries))
	}
}

func TestWriterCoalescesABurstIntoOneWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dns.snapshot")
	var mu sync.Mutex
	var written []int
	w := &Writer{Path: path, Delay: 100 * time.Millisecond, Written: func(st *State, err error) {
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		written = append(written, int(st.SyncedAt.Unix()))
		mu.Unlock()
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	for gen := 1; gen <= 20; gen++ {
		w.Submit(generation(gen, 50+gen%50))
	}
	time.Sleep(400 * time.Millisecond)
	w.Submit(generation(21, 71))
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if len(written) != 2 || written[0] != 20 || written[1] != 21 {
		t.Fatalf("writes %v, want [20 21]: one per burst, newest wins, pending flushed at stop", written)
	}
	st, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if consistentGeneration(t, st) != 21 {
		t.Fatal("last write is not on disk")
	}
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
