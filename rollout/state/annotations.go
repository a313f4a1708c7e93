package state

import (
	"encoding/json"
	"fmt"
)

// Annotation holds the rollout's state on the DaemonSet, as one JSON document: one annotation
// is written atomically with the rest of the object, so a reader never sees half a state.
const Annotation = "rollout.bulkhead.dev/state"

// Encode returns the annotations that persist s (to merge into the DaemonSet's).
func Encode(s State) (map[string]string, error) {
	s.Version = version
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("encode rollout state: %w", err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode rollout state: %w", err)
	}
	return map[string]string{Annotation: string(data)}, nil
}

// Decode reads the state from a DaemonSet's annotations. found is false when the DaemonSet
// has never been under a rollout. A present but unreadable state is an error that says what
// is wrong: bulkhead never guesses what a damaged state meant.
func Decode(annotations map[string]string) (s State, found bool, err error) {
	raw, ok := annotations[Annotation]
	if !ok {
		return State{}, false, nil
	}
	// Read the version first, so a state from another bulkhead release is named as such
	// rather than as an unknown field.
	var v struct {
		Version int `json:"v"`
	}
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		return State{}, true, fmt.Errorf("annotation %s is not a rollout state: %w", Annotation, err)
	}
	s, err = decodeVersion(v.Version, raw)
	if err != nil {
		return State{}, true, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	if err := s.validate(); err != nil {
		return State{}, true, fmt.Errorf("annotation %s: %w", Annotation, err)
	}
	return s, true, nil
}
