package diskimage

import (
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
)

// MaxOVFDisks bounds what an OVF may declare; appliances have a handful.
const MaxOVFDisks = 64

// maxOVFSize bounds the descriptor read into memory.
const maxOVFSize = 4 << 20

// OVFDisk is one disk of an OVF, in boot/attachment order.
type OVFDisk struct {
	DiskID   string
	FileID   string
	Href     string // file name inside the OVA
	FileSize uint64 // References/File ovf:size, 0 if absent
	Capacity uint64 // bytes
	Format   string // ovf:format URI (e.g. ...vmdk.html#streamOptimized)
}

// OVF is the part of an OVF descriptor the importer uses.
type OVF struct {
	Name  string // VirtualSystem id
	Disks []OVFDisk
}

type xmlEnvelope struct {
	References struct {
		Files []struct {
			ID   string `xml:"id,attr"`
			Href string `xml:"href,attr"`
			Size string `xml:"size,attr"`
		} `xml:"File"`
	} `xml:"References"`
	DiskSection struct {
		Disks []struct {
			DiskID   string `xml:"diskId,attr"`
			FileRef  string `xml:"fileRef,attr"`
			Capacity string `xml:"capacity,attr"`
			Units    string `xml:"capacityAllocationUnits,attr"`
			Format   string `xml:"format,attr"`
		} `xml:"Disk"`
	} `xml:"DiskSection"`
	VirtualSystem struct {
		ID       string `xml:"id,attr"`
		Hardware struct {
			Items []xmlItem `xml:"Item"`
		} `xml:"VirtualHardwareSection"`
	} `xml:"VirtualSystem"`
}

type xmlItem struct {
	AddressOnParent string `xml:"AddressOnParent"`
	HostResource    string `xml:"HostResource"`
	InstanceID      string `xml:"InstanceID"`
	Parent          string `xml:"Parent"`
	ResourceType    string `xml:"ResourceType"`
}

// ParseOVF parses an OVF descriptor: References (files), DiskSection (disks) and the
// VirtualSystem's disk drive items (ResourceType 17), which give the disk order: by controller
// (Parent) then AddressOnParent. Disks no item attaches follow, in DiskSection order.
func ParseOVF(r io.Reader) (*OVF, error) {
	var env xmlEnvelope
	dec := xml.NewDecoder(io.LimitReader(r, maxOVFSize))
	dec.Strict = true
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("OVF descriptor is not valid XML: %w", err)
	}
	files := map[string]int{}
	for i, f := range env.References.Files {
		if f.ID == "" {
			return nil, fmt.Errorf("OVF References: File %d has no ovf:id", i)
		}
		if _, dup := files[f.ID]; dup {
			return nil, fmt.Errorf("OVF References: file id %q is declared twice", f.ID)
		}
		if err := safeHref(f.Href); err != nil {
			return nil, err
		}
		files[f.ID] = i
	}
	if n := len(env.DiskSection.Disks); n == 0 {
		return nil, fmt.Errorf("OVF has no disks (DiskSection is empty)")
	} else if n > MaxOVFDisks {
		return nil, fmt.Errorf("OVF declares %d disks, more than %d", n, MaxOVFDisks)
	}
	out := &OVF{Name: env.VirtualSystem.ID}
	byID := map[string]int{}
	usedFile := map[string]bool{}
	for _, d := range env.DiskSection.Disks {
		if d.DiskID == "" {
			return nil, fmt.Errorf("OVF DiskSection: a Disk has no ovf:diskId")
		}
		if _, dup := byID[d.DiskID]; dup {
			return nil, fmt.Errorf("OVF DiskSection: disk id %q is declared twice", d.DiskID)
		}
		fi, ok := files[d.FileRef]
		if !ok {
			return nil, fmt.Errorf("OVF disk %q refers to file %q, which References does not declare", d.DiskID, d.FileRef)
		}
		if usedFile[d.FileRef] {
			return nil, fmt.Errorf("OVF file %q backs two disks", d.FileRef)
		}
		usedFile[d.FileRef] = true
		capacity, err := parseCapacity(d.Capacity, d.Units)
		if err != nil {
			return nil, fmt.Errorf("OVF disk %q: %w", d.DiskID, err)
		}
		f := env.References.Files[fi]
		var size uint64
		if f.Size != "" {
			if size, err = strconv.ParseUint(f.Size, 10, 64); err != nil {
				return nil, fmt.Errorf("OVF file %q: bad ovf:size %q", f.ID, f.Size)
			}
		}
		byID[d.DiskID] = len(out.Disks)
		out.Disks = append(out.Disks, OVFDisk{DiskID: d.DiskID, FileID: f.ID, Href: f.Href, FileSize: size, Capacity: capacity, Format: d.Format})
	}
	out.Disks = orderDisks(out.Disks, byID, env.VirtualSystem.Hardware.Items)
	return out, nil
}

func orderDisks(disks []OVFDisk, byID map[string]int, items []xmlItem) []OVFDisk {
	type key struct {
		parent, addr, idx int
	}
	keys := make([]key, len(disks))
	for i := range keys {
		keys[i] = key{parent: 1 << 30, addr: 1 << 30, idx: i}
	}
	for _, it := range items {
		if strings.TrimSpace(it.ResourceType) != "17" {
			continue
		}
		res := strings.TrimSpace(it.HostResource)
		id := res[strings.LastIndex(res, "/")+1:]
		if !strings.Contains(res, "disk/") {
			continue
		}
		i, ok := byID[id]
		if !ok {
			continue
		}
		keys[i].parent = atoiOr(it.Parent, 1<<29)
		keys[i].addr = atoiOr(it.AddressOnParent, 1<<29)
	}
	sort.SliceStable(keys, func(a, b int) bool {
		if keys[a].parent != keys[b].parent {
			return keys[a].parent < keys[b].parent
		}
		if keys[a].addr != keys[b].addr {
			return keys[a].addr < keys[b].addr
		}
		return keys[a].idx < keys[b].idx
	})
	out := make([]OVFDisk, len(disks))
	for i, k := range keys {
		out[i] = disks[k.idx]
	}
	return out
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n >= 1<<29 {
		return def
	}
	return n
}

// parseCapacity reads ovf:capacity with capacityAllocationUnits "byte", "byte * 2^N" or
// "byte * N"; it refuses overflow.
func parseCapacity(c, units string) (uint64, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(c), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad ovf:capacity %q", c)
	}
	mult := uint64(1)
	u := strings.ReplaceAll(strings.TrimSpace(units), " ", "")
	switch {
	case u == "" || u == "byte":
	case strings.HasPrefix(u, "byte*2^"):
		e, err := strconv.Atoi(u[len("byte*2^"):])
		if err != nil || e < 0 || e > 50 {
			return 0, fmt.Errorf("bad capacityAllocationUnits %q", units)
		}
		mult = 1 << e
	case strings.HasPrefix(u, "byte*"):
		m, err := strconv.ParseUint(u[len("byte*"):], 10, 64)
		if err != nil || m == 0 {
			return 0, fmt.Errorf("bad capacityAllocationUnits %q", units)
		}
		mult = m
	default:
		return 0, fmt.Errorf("bad capacityAllocationUnits %q", units)
	}
	if n > (1<<63)/mult {
		return 0, fmt.Errorf("capacity %s %s overflows", c, units)
	}
	return n * mult, nil
}

// safeHref accepts plain file names only: no directories, no "..", no absolute paths, no
// URLs. An OVA must never make the importer read or write outside its own entries.
func safeHref(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("OVF file reference has no ovf:href")
	case strings.Contains(h, "://"):
		return fmt.Errorf("OVF file reference %q is a URL; only files inside the OVA are imported", h)
	case strings.ContainsAny(h, "/\\\x00") || h == "." || h == ".." || path.Base(h) != h:
		return fmt.Errorf("OVF file reference %q is not a plain file name", h)
	case len(h) > 255:
		return fmt.Errorf("OVF file reference is longer than 255 characters")
	}
	return nil
}
