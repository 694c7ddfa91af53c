// Package quota enforces project limits: every create or resize asks Check with the change
// it is about to make, inside the same store transaction that makes it.
package quota

import (
	"fmt"
	"strings"

	"github.com/finvirt/finvirt/api"
	"github.com/finvirt/finvirt/internal/units"
)

// Add returns usage plus delta (delta may be negative for deletes and shrinks).
func Add(u api.ProjectUsage, delta api.ProjectUsage) api.ProjectUsage {
	return api.ProjectUsage{
		Instances: u.Instances + delta.Instances,
		VCPUs:     u.VCPUs + delta.VCPUs,
		Memory:    u.Memory + delta.Memory,
		Disk:      u.Disk + delta.Disk,
	}
}

// Check reports whether usage+delta fits the project's limits (zero limit = unlimited),
// naming every exceeded limit with its numbers.
func Check(p api.Project, delta api.ProjectUsage) error {
	next := Add(p.Usage, delta)
	var over []string
	l := p.Limits
	if l.Instances > 0 && delta.Instances > 0 && next.Instances > l.Instances {
		over = append(over, fmt.Sprintf("instances %d > limit %d", next.Instances, l.Instances))
	}
	if l.VCPUs > 0 && delta.VCPUs > 0 && next.VCPUs > l.VCPUs {
		over = append(over, fmt.Sprintf("vcpus %d > limit %d", next.VCPUs, l.VCPUs))
	}
	if l.Memory > 0 && delta.Memory > 0 && next.Memory > l.Memory {
		over = append(over, fmt.Sprintf("memory %s > limit %s", units.FormatSize(next.Memory), units.FormatSize(l.Memory)))
	}
	if l.Disk > 0 && delta.Disk > 0 && next.Disk > l.Disk {
		over = append(over, fmt.Sprintf("disk %s > limit %s", units.FormatSize(next.Disk), units.FormatSize(l.Disk)))
	}
	if len(over) > 0 {
		return fmt.Errorf("project %s is over quota: %s; raise the limits (finvirt project update %s --limit-...) or free resources", p.Name, strings.Join(over, ", "), p.Name)
	}
	return nil
}

// ValidateLimits rejects negative limits and limits below what is already in use.
func ValidateLimits(name string, l api.ProjectLimits, u api.ProjectUsage) error {
	if l.Instances < 0 || l.VCPUs < 0 || l.Memory < 0 || l.Disk < 0 {
		return fmt.Errorf("project %s: limits must be zero (unlimited) or positive", name)
	}
	var below []string
	if l.Instances > 0 && u.Instances > l.Instances {
		below = append(below, fmt.Sprintf("instances limit %d < %d in use", l.Instances, u.Instances))
	}
	if l.VCPUs > 0 && u.VCPUs > l.VCPUs {
		below = append(below, fmt.Sprintf("vcpus limit %d < %d in use", l.VCPUs, u.VCPUs))
	}
	if l.Memory > 0 && u.Memory > l.Memory {
		below = append(below, fmt.Sprintf("memory limit %s < %s in use", units.FormatSize(l.Memory), units.FormatSize(u.Memory)))
	}
	if l.Disk > 0 && u.Disk > l.Disk {
		below = append(below, fmt.Sprintf("disk limit %s < %s in use", units.FormatSize(l.Disk), units.FormatSize(u.Disk)))
	}
	if len(below) > 0 {
		return fmt.Errorf("project %s: %s; free resources first", name, strings.Join(below, ", "))
	}
	return nil
}
