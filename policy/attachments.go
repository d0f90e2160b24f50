package policy

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	gomessage "github.com/emersion/go-message"

	"abox/store/msginfo"
)

// Forbidden attachments (user agreement 5.2.6: no programs or code meant
// to harm): executables and scripts, and office documents with macros,
// recognised by their content and not only by their names, also inside
// zip archives.

// dangerousExt are names no legitimate letter to a subscriber carries.
var dangerousExt = map[string]string{
	".exe": "Windows program", ".com": "DOS program", ".scr": "Windows screen saver", ".pif": "Windows shortcut",
	".bat": "batch script", ".cmd": "batch script", ".js": "JavaScript", ".jse": "encoded JavaScript",
	".vbs": "VBScript", ".vbe": "encoded VBScript", ".wsf": "Windows script", ".wsh": "Windows script",
	".ps1": "PowerShell script", ".msi": "Windows installer", ".msp": "Windows installer patch",
	".hta": "HTML application", ".jar": "Java program", ".lnk": "Windows shortcut", ".cpl": "control panel item",
	".reg": "registry file", ".dll": "Windows library", ".scf": "shell command file", ".apk": "Android package",
	".docm": "Word document with macros", ".xlsm": "Excel workbook with macros", ".pptm": "PowerPoint with macros",
	".iso": "disk image", ".img": "disk image", ".vhd": "disk image",
}

// sniff says what a file is by its first bytes, or "".
func sniff(b []byte) string {
	switch {
	case len(b) >= 2 && b[0] == 'M' && b[1] == 'Z':
		return "Windows executable"
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "ELF executable"
	case bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xce}), bytes.HasPrefix(b, []byte{0xfe, 0xed, 0xfa, 0xcf}),
		bytes.HasPrefix(b, []byte{0xce, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}):
		return "Mach-O executable"
	case bytes.HasPrefix(b, []byte("#!")):
		return "script"
	case bytes.HasPrefix(b, []byte{0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1}):
		// OLE2 (old Office): macros live in a _VBA_PROJECT stream, whose
		// name is stored in UTF-16.
		if bytes.Contains(b, []byte("_\x00V\x00B\x00A\x00_\x00P\x00R\x00O\x00J\x00E\x00C\x00T")) || bytes.Contains(b, []byte("_VBA_PROJECT")) {
			return "Office document with macros"
		}
	}
	return ""
}

// maxScan bounds how much of an attachment or archive member is read.
const maxScan = 8 << 20

func checkAttachments(e *Engine, _ context.Context, in *Inspection) []Finding {
	in.walk()
	var out []Finding
	if in.tooDeep {
		out = append(out, Finding{Reject: true, Reason: fmt.Sprintf("MIME parts nested deeper than %d levels cannot be checked", msginfo.MaxNesting)})
	}
	for _, p := range in.parts {
		if why := forbidden(p.name, p.data, 0); why != "" {
			out = append(out, Finding{Reject: true, Reason: "forbidden attachment " + why})
		}
	}
	return out
}

// partName is a part's file name, from Content-Disposition or the older
// Content-Type name parameter.
func partName(p *gomessage.Entity) string {
	if _, params, err := p.Header.ContentDisposition(); err == nil && params["filename"] != "" {
		return params["filename"]
	}
	if _, params, err := p.Header.ContentType(); err == nil {
		return params["name"]
	}
	return ""
}

// forbidden explains why a file (name and content) is not allowed, or
// returns "". Zip archives are opened, two levels deep at most.
func forbidden(name string, data []byte, depth int) string {
	label := name
	if label == "" {
		label = "(unnamed)"
	}
	if what := sniff(data); what != "" {
		return fmt.Sprintf("%s: %s", label, what)
	}
	if what, ok := dangerousExt[strings.ToLower(path.Ext(name))]; ok {
		return fmt.Sprintf("%s: %s", label, what)
	}
	if !bytes.HasPrefix(data, []byte("PK\x03\x04")) || depth >= 2 {
		return ""
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return ""
	}
	for i, f := range zr.File {
		if i >= 1000 {
			break
		}
		lower := strings.ToLower(f.Name)
		// OOXML with macros keeps them in vbaProject.bin.
		if strings.HasSuffix(lower, "vbaproject.bin") {
			return fmt.Sprintf("%s: Office document with macros", label)
		}
		rc, err := f.Open()
		if err != nil {
			continue
		}
		head, _ := io.ReadAll(io.LimitReader(rc, maxScan))
		rc.Close()
		if why := forbidden(f.Name, head, depth+1); why != "" {
			return fmt.Sprintf("%s contains %s", label, why)
		}
	}
	return ""
}
