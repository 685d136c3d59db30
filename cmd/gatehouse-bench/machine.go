package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// cpuTicks is the machine-wide CPU time from /proc/stat's first line: all of it, and
// the part the hypervisor gave to other guests (steal).
type cpuTicks struct{ total, steal uint64 }

func readCPUTicks() cpuTicks {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTicks{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	var t cpuTicks
	for i, f := range fields[1:] {
		n, _ := strconv.ParseUint(f, 10, 64)
		if i >= 8 { // guest time is already counted in user time
			break
		}
		t.total += n
		if i == 7 {
			t.steal = n
		}
	}
	return t
}

// loadAverage is /proc/loadavg's one-minute figure ("?" where there is none).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// machineRecord describes the machine a table was measured on: cores, CPU, where the
// processes ran, the load before the run, and the CPU time stolen by the hypervisor
// while it ran (a run with much steal measured a noisy neighbour too).
type machineRecord struct {
	start     cpuTicks
	loadStart string
	place     placement
}

func startMachineRecord(p placement) machineRecord {
	return machineRecord{start: readCPUTicks(), loadStart: loadAverage(), place: p}
}

func (m machineRecord) String() string {
	end := readCPUTicks()
	steal := "unknown"
	if d := end.total - m.start.total; d > 0 {
		steal = fmt.Sprintf("%.1f%%", 100*float64(end.steal-m.start.steal)/float64(d))
	}
	where := "servers and load generator unpinned (fewer than two cores, or no taskset): ratios are not reported"
	if m.place.pinned {
		where = fmt.Sprintf("servers pinned to core %s, the load generator to core %s", serverCPU, generatorCPU)
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s: %d CPUs (%s), %s, %s/%s; %s; load average %s before the run, %s after; CPU steal during the run %s",
		host, runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, where, m.loadStart, loadAverage(), steal)
}
