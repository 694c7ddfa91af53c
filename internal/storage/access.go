package storage

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
)

// Layer is one image file of a volume's backing chain.
type Layer struct {
	Path      string
	Format    Format
	Encrypted bool
}

// Access is what a hypervisor needs to open a volume: the image chain (active layer first), the
// decrypted volume key for encrypted layers, and the cache policy. It holds key material: keep it
// in memory only, never log or persist it.
type Access struct {
	Pool   string
	Volume string
	// Chain is the active image first, then its backing files down to the base. Drivers whose
	// volumes are single files (btrfs) return one layer.
	Chain    []Layer
	Size     uint64
	Cache    CachePolicy
	ReadOnly bool
	// Key is the volume's LUKS passphrase material (32 random bytes); nil when not encrypted.
	Key []byte
	// WritableBacking opens backing layers read-write: for offline tools that write into them
	// (qemu-img commit). Never set it for QEMU, which must not write below the active layer.
	WritableBacking bool
}

// Encrypted reports whether any layer needs the key.
func (a Access) Encrypted() bool {
	for _, l := range a.Chain {
		if l.Encrypted {
			return true
		}
	}
	return false
}

// SecretID is the QEMU object id of the volume's key secret, unique per pool and volume.
func (a Access) SecretID() string {
	return "sec-" + qemuID(a.Pool) + "-" + qemuID(a.Volume)
}

// Passphrase is the LUKS passphrase derived from the key: its base64 text. LUKS in QEMU wants a
// UTF-8 passphrase, so the raw bytes are never handed over directly.
func Passphrase(key []byte) string { return base64.StdEncoding.EncodeToString(key) }

// SecretObject is the QMP object-add argument for the key secret ({"qom-type":"secret",...}).
// Prefer it over SecretObjectArg: QMP keeps the key off the command line (and out of /proc).
func (a Access) SecretObject() map[string]any {
	if a.Key == nil {
		return nil
	}
	return map[string]any{
		"qom-type": "secret",
		"id":       a.SecretID(),
		"data":     base64.StdEncoding.EncodeToString([]byte(Passphrase(a.Key))),
		"format":   "base64",
	}
}

// SecretObjectArg is the -object command-line value for the key secret, for tools (qemu-img,
// qemu-io) that take it on the command line. The key is visible in /proc/PID/cmdline of that
// process; use it for short-lived root-only tools, and SecretObject for QEMU.
func (a Access) SecretObjectArg() string {
	if a.Key == nil {
		return ""
	}
	return fmt.Sprintf("secret,id=%s,data=%s,format=base64", a.SecretID(),
		base64.StdEncoding.EncodeToString([]byte(Passphrase(a.Key))))
}

// CacheOptions is the blockdev "cache" member for the policy. none = O_DIRECT with flushes
// honoured; writethrough and writeback both use the host page cache and honour flushes; the
// difference between them is the guest device's write cache (DeviceWriteCache).
func (p CachePolicy) CacheOptions() map[string]any {
	switch p {
	case CacheWritethrough, CacheWriteback:
		return map[string]any{"direct": false, "no-flush": false}
	default:
		return map[string]any{"direct": true, "no-flush": false}
	}
}

// DeviceWriteCache is the value of the guest device's write-cache property (virtio-blk,
// scsi-hd): "off" for writethrough (QEMU flushes after every write), "on" otherwise (the guest
// sees a volatile cache and sends flushes, which QEMU passes to the host).
func (p CachePolicy) DeviceWriteCache() string {
	if p == CacheWritethrough {
		return "off"
	}
	return "on"
}

// BlockdevNode is the QMP blockdev-add argument for the volume: a format node named nodeName
// over a file node, with the full backing chain spelled out (so QEMU never probes formats or
// follows paths written in image headers) and the key secret on every encrypted layer.
func (a Access) BlockdevNode(nodeName string) map[string]any {
	if len(a.Chain) == 0 {
		return nil
	}
	return a.layerNode(0, nodeName)
}

func (a Access) layerNode(i int, nodeName string) map[string]any {
	l := a.Chain[i]
	file := map[string]any{
		"driver":   "file",
		"filename": l.Path,
		"cache":    a.Cache.CacheOptions(),
	}
	if strings.HasPrefix(l.Path, "/dev/") {
		file["driver"] = "host_device"
	}
	// Backing layers are always opened read-only by QEMU; only the top node follows ReadOnly.
	readOnly := a.ReadOnly || (i > 0 && !a.WritableBacking)
	if readOnly {
		file["read-only"] = true
	}
	n := map[string]any{
		"driver": string(l.Format),
		"file":   file,
		"cache":  a.Cache.CacheOptions(),
	}
	if nodeName != "" {
		n["node-name"] = nodeName
		file["node-name"] = nodeName + "-file"
	}
	if readOnly {
		n["read-only"] = true
	}
	if l.Format == FormatQcow2 {
		if l.Encrypted {
			n["encrypt"] = map[string]any{"format": "luks", "key-secret": a.SecretID()}
		}
		if i+1 < len(a.Chain) {
			child := ""
			if nodeName != "" {
				child = fmt.Sprintf("%s-b%d", nodeName, i+1)
			}
			n["backing"] = a.layerNode(i+1, child)
		} else {
			n["backing"] = nil
		}
	}
	return n
}

// BlockdevJSON is BlockdevNode marshalled, the form -blockdev accepts on the command line.
func (a Access) BlockdevJSON(nodeName string) string {
	b, err := json.Marshal(a.BlockdevNode(nodeName))
	if err != nil {
		// Only maps of strings, bools and nested maps: cannot fail.
		panic(err)
	}
	return string(b)
}

// BlockdevArgs is the command-line pair for QEMU: "-blockdev", BlockdevJSON. Pair it with
// "-object", SecretObjectArg() (or QMP object-add SecretObject) for encrypted volumes.
func (a Access) BlockdevArgs(nodeName string) []string {
	return []string{"-blockdev", a.BlockdevJSON(nodeName)}
}

// QemuIOArgs are the arguments for qemu-io / qemu-img --image-opts style tools to open the
// volume exactly as QEMU would: an optional --object for the secret, then a json: filename.
func (a Access) QemuIOArgs() []string {
	var args []string
	if a.Key != nil {
		args = append(args, "--object", a.SecretObjectArg())
	}
	return append(args, "json:"+a.BlockdevJSON(""))
}

// qemuID maps a name to QEMU's id alphabet (letters, digits, '-', '.', '_'; must start with a
// letter, which the "sec-" prefix guarantees).
func qemuID(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
