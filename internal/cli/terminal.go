package cli

import (
	"bytes"
	"io"
)

// plainWriter passes a live view's frames to something that is not a terminal (a pipe, a file,
// a log collector): it drops ANSI control sequences (clear screen, cursor moves), starts each
// frame on a new line where the screen would have been cleared, and ends lines with \n alone.
type plainWriter struct {
	w io.Writer
	// inEscape is set between ESC and the final byte of a control sequence, which may span
	// writes.
	inEscape, sawBracket bool
	started              bool
}

func (p *plainWriter) Write(b []byte) (int, error) {
	var out bytes.Buffer
	for _, c := range b {
		switch {
		case p.inEscape && !p.sawBracket:
			p.sawBracket = c == '['
			p.inEscape = p.sawBracket
		case p.inEscape:
			// A CSI sequence ends with a byte in 0x40–0x7E; J is "erase display": a new frame.
			if c >= 0x40 && c <= 0x7e {
				p.inEscape, p.sawBracket = false, false
				if c == 'J' && p.started {
					out.WriteByte('\n')
				}
			}
		case c == 0x1b:
			p.inEscape = true
		case c == '\r':
		default:
			p.started = true
			out.WriteByte(c)
		}
	}
	if _, err := p.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}
