package iso20022

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	for _, tc := range []struct {
		in, ccy string
		want    int64
		code    string
	}{
		{"12.34", "EUR", 1234, ""},
		{"12.3", "EUR", 1230, ""},
		{"12", "EUR", 1200, ""},
		{"0.01", "EUR", 1, ""},
		{"007.10", "USD", 710, ""},
		{"500", "JPY", 500, ""},
		{"1.5", "JPY", 0, "FF01"},
		{"12.345", "EUR", 0, "FF01"},
		{"1.234", "BHD", 1234, ""},
		{"0", "EUR", 0, "AM01"},
		{"0.00", "EUR", 0, "AM01"},
		{"-1", "EUR", 0, "FF01"},
		{"+1", "EUR", 0, "FF01"},
		{"1e3", "EUR", 0, "FF01"},
		{"1.", "EUR", 0, "FF01"},
		{".5", "EUR", 0, "FF01"},
		{"1.2.3", "EUR", 0, "FF01"},
		{"", "EUR", 0, "FF01"},
		{"1 000", "EUR", 0, "FF01"},
		{"1234567890123456789", "JPY", 0, "AM02"},
		{"92233720368547758.07", "EUR", 0, "AM02"},
		{"9223372036854775.80", "EUR", 922337203685477580, ""},
		{"10", "XXX", 0, "AM03"},
	} {
		got, code, _ := ParseAmount(tc.in, tc.ccy)
		if got != tc.want || code != tc.code {
			t.Errorf("ParseAmount(%q,%s) = %d,%q; want %d,%q", tc.in, tc.ccy, got, code, tc.want, tc.code)
		}
	}
}

func TestDecodeSamples(t *testing.T) {
	data, _ := os.ReadFile("testdata/pacs008_single.xml")
	p, err := Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tx := p.Txs[0]
	if p.MsgId != "MSG-0001" || tx.Reason != "" || tx.Transfer.ID != "8a562c67-ca16-48ba-b074-65581be6f011" ||
		tx.Transfer.DebitID != "DE89370400440532013000" || tx.Transfer.CreditID != "bob" || tx.Transfer.Amount != 1234 || tx.Transfer.Currency != "EUR" {
		t.Fatalf("decoded %+v", p)
	}
	data, _ = os.ReadFile("testdata/pacs008_multi.xml")
	p, err = Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Txs) != 2 || p.Txs[0].Transfer.ID != "MSG-0002:E2E-A" || p.Txs[0].Transfer.Amount != 500 || p.Txs[1].Transfer.Amount != 50 {
		t.Fatalf("decoded %+v", p.Txs)
	}
}

func TestDecodeRejections(t *testing.T) {
	single, _ := os.ReadFile("testdata/pacs008_single.xml")
	s := string(single)
	for _, tc := range []struct {
		name, doc, msg string // msg: substring of the FormatError
		txReason       string // or a per-transaction reason
	}{
		{"not xml", "hello", "no root element", ""},
		{"empty", "", "no root element", ""},
		{"other message", strings.Replace(s, "pacs.008.001.08", "pacs.009.001.08", 1), "namespace", ""},
		{"unclosed", s[:len(s)-20], "well-formed", ""},
		{"nb of txs", strings.Replace(s, "<NbOfTxs>1<", "<NbOfTxs>2<", 1), "NbOfTxs", ""},
		{"no msg id", strings.Replace(s, "MSG-0001", "", 1), "MsgId", ""},
		{"bad date", strings.Replace(s, "2026-12-02T05:00:00Z", "yesterday", 1), "CreDtTm", ""},
		{"no settlement", strings.Replace(s, "<SttlmMtd>CLRG</SttlmMtd>", "", 1), "SttlmMtd", ""},
		{"precision", strings.Replace(s, "12.34", "12.345", 1), "", "FF01"},
		{"currency", strings.Replace(s, `Ccy="EUR"`, `Ccy="ABC"`, 1), "", "AM03"},
		{"zero", strings.Replace(s, "12.34", "0.00", 1), "", "AM01"},
		{"no end to end", strings.Replace(s, "<EndToEndId>E2E-1</EndToEndId>", "", 1), "", "FF01"},
		{"bad uetr", strings.Replace(s, "8a562c67-ca16", "8a562c67-zz16", 1), "", "FF01"},
		{"no creditor account", strings.Replace(s, "<Othr><Id>bob</Id></Othr>", "", 1), "", "AC01"},
		{"account with spaces", strings.Replace(s, "<Id>bob</Id>", "<Id>b o b</Id>", 1), "", "AC01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode(strings.NewReader(tc.doc))
			if tc.msg != "" {
				var fe *FormatError
				if !errors.As(err, &fe) || !strings.Contains(fe.Msg, tc.msg) {
					t.Fatalf("want FormatError about %s, got %v", tc.msg, err)
				}
				return
			}
			if err != nil || p.Txs[0].Reason != tc.txReason {
				t.Fatalf("want tx reason %s, got %v %+v", tc.txReason, err, p)
			}
		})
	}
}

func TestReportEncodes(t *testing.T) {
	r := Report{OrgnlMsgId: "M1", OrgnlNbOfTxs: "1", GrpSts: "RJCT", Txs: []TxStatus{{OrgnlEndToEndId: "E", TxSts: "RJCT", StsRsnInf: &StatusInfo{Cd: "AM04"}}}}
	out, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{Pacs002NS, "<FIToFIPmtStsRpt>", "<GrpSts>RJCT</GrpSts>", "<TxSts>RJCT</TxSts>", "<Rsn>", "<Cd>AM04</Cd>", "<OrgnlMsgId>M1</OrgnlMsgId>"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("pacs.002 lacks %s:\n%s", want, out)
		}
	}
	if err := xml.Unmarshal(out, new(struct{})); err != nil {
		t.Fatal(err)
	}
}

// FuzzDecodePacs008: the decoder never panics, and whatever it accepts maps
// onto well-formed transfers or carries a reason code.
func FuzzDecodePacs008(f *testing.F) {
	for _, name := range []string{"testdata/pacs008_single.xml", "testdata/pacs008_multi.xml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode(bytes.NewReader(data))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("non-format error %v", err)
			}
			return
		}
		if len(p.Txs) == 0 || len(p.Txs) > MaxTxs {
			t.Fatalf("accepted %d transactions", len(p.Txs))
		}
		for _, tx := range p.Txs {
			if tx.Reason == "" && (tx.Transfer.Amount <= 0 || tx.Transfer.ID == "" || tx.Transfer.DebitID == "") {
				t.Fatalf("accepted malformed transaction %+v", tx)
			}
		}
	})
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.34", "0", "1.", "9223372036854775807", "00.01", "1.2.3"} {
		f.Add(s, "EUR")
	}
	f.Add("500", "JPY")
	f.Fuzz(func(t *testing.T, s, ccy string) {
		v, code, _ := ParseAmount(s, ccy)
		if code == "" && v <= 0 {
			t.Fatalf("accepted non-positive %q -> %d", s, v)
		}
	})
}
