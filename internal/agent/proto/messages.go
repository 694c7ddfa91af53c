package proto

import "encoding/binary"

// Version is the protocol version exchanged in Hello.
const Version = 1

// Operations carried in Request.Op.
const (
	OpHello           = "hello"
	OpPing            = "ping"
	OpExec            = "exec"
	OpPush            = "push"
	OpPull            = "pull"
	OpMetrics         = "metrics"
	OpShutdown        = "shutdown"
	OpWorkloads       = "workloads"
	OpWorkloadRestart = "workload-restart"
	OpWorkloadLogs    = "workload-logs"
)

// Request opens a request id. Only the fields of its Op are set.
type Request struct {
	Op string `json:"op"`

	// hello
	Nonce string `json:"nonce,omitempty"`

	// exec
	Argv  []string `json:"argv,omitempty"`
	Env   []string `json:"env,omitempty"`
	Cwd   string   `json:"cwd,omitempty"`
	Stdin bool     `json:"stdin,omitempty"` // the host streams ChanStdin data; otherwise stdin is /dev/null

	// push / pull
	Path string `json:"path,omitempty"`
	Mode uint32 `json:"mode,omitempty"`
	Size int64  `json:"size,omitempty"` // push: exact byte count that follows (-1: unknown)

	// shutdown
	TimeoutMS int64 `json:"timeout_ms,omitempty"`

	// workload-restart, workload-logs
	Name string `json:"name,omitempty"`
}

// Response closes a request id. Error is non-empty when the operation failed.
type Response struct {
	Error string `json:"error,omitempty"`

	// hello
	Nonce        string `json:"nonce,omitempty"`
	Version      int    `json:"version,omitempty"`
	AgentVersion string `json:"agent_version,omitempty"`

	// exec
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`

	// push / pull
	Bytes  int64  `json:"bytes,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`

	Health    *Health    `json:"health,omitempty"`
	Metrics   *Metrics   `json:"metrics,omitempty"`
	Workloads []Workload `json:"workloads,omitempty"`
	Logs      string     `json:"logs,omitempty"`
}

// Health answers ping.
type Health struct {
	UptimeSec float64    `json:"uptime_sec"`
	Kernel    string     `json:"kernel"`
	Hostname  string     `json:"hostname"`
	PID1      bool       `json:"pid1"`
	Workloads []Workload `json:"workloads,omitempty"`
}

// Workload is the state of one supervised process.
type Workload struct {
	Name     string `json:"name"`
	State    string `json:"state"` // starting, running, backoff, exited, failed, stopped
	PID      int    `json:"pid,omitempty"`
	Restarts int    `json:"restarts"`
	LastExit int    `json:"last_exit"`
	Restart  string `json:"restart"`
}

// Metrics is a point-in-time sample of guest resource use.
type Metrics struct {
	// CPU counters in clock ticks (USER_HZ) summed over all CPUs since boot, from /proc/stat.
	CPUUser   uint64 `json:"cpu_user"`
	CPUSystem uint64 `json:"cpu_system"`
	CPUIdle   uint64 `json:"cpu_idle"`
	CPUIOWait uint64 `json:"cpu_iowait"`
	CPUTotal  uint64 `json:"cpu_total"`
	CPUs      int    `json:"cpus"`
	// Memory in bytes from /proc/meminfo.
	MemTotal     uint64     `json:"mem_total"`
	MemFree      uint64     `json:"mem_free"`
	MemAvailable uint64     `json:"mem_available"`
	Load1        float64    `json:"load1"`
	Load5        float64    `json:"load5"`
	Load15       float64    `json:"load15"`
	UptimeSec    float64    `json:"uptime_sec"`
	Processes    []ProcStat `json:"processes,omitempty"`
}

// ProcStat is the resource use of one workload process.
type ProcStat struct {
	Name     string `json:"name"`
	PID      int    `json:"pid"`
	RSSBytes uint64 `json:"rss_bytes"`
	CPUTicks uint64 `json:"cpu_ticks"` // utime+stime
}

// WindowPayload encodes a flow-control credit.
func WindowPayload(n uint32) []byte {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, n)
	return b
}

// ParseWindow decodes a flow-control credit; malformed payloads count as zero.
func ParseWindow(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

// InitialWindow is how many data frames a sender may have in flight on one host->guest stream
// before it waits for TypeWindow credit. The receiver acknowledges each frame once consumed.
const InitialWindow = 16
