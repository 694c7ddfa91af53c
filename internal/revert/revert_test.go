package revert

import (
	"reflect"
	"testing"
)

func TestReverter(t *testing.T) {
	tests := []struct {
		name    string
		success bool
		want    []int
	}{
		{"fail runs undo newest first", false, []int{3, 2, 1}},
		{"success drops undo", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			r := New()
			for i := 1; i <= 3; i++ {
				i := i
				r.Add(func() { got = append(got, i) })
			}
			if tt.success {
				r.Success()
			}
			r.Fail()
			r.Fail() // second call must not run anything again
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("undo order = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClone(t *testing.T) {
	var ran int
	r := New()
	r.Add(func() { ran++ })
	c := r.Clone()
	r.Fail()
	if ran != 0 {
		t.Fatalf("original ran undo after Clone")
	}
	c.Fail()
	if ran != 1 {
		t.Fatalf("clone ran undo %d times, want 1", ran)
	}
}
