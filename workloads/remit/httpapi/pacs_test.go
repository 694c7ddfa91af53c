package httpapi

import (
	"os"
	"strings"
	"testing"
)

func readSample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../iso20022/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ibanBank adds the IBAN-named debtor account used by the samples and funds it.
func ibanBank(e *env) {
	e.bank()
	e.mustStatus(e.call("POST", "/v1/accounts", "", `{"id":"DE89370400440532013000","currency":"EUR","flags":["debits_must_not_exceed_credits"]}`), 201)
	e.mustStatus(e.call("POST", "/v1/transfers", "fund-iban", `{"id":"fund-iban","debit_account_id":"mint","credit_account_id":"DE89370400440532013000","amount":2000,"currency":"EUR"}`), 201)
	e.mustStatus(e.call("POST", "/v1/transfers", "fund-jane", `{"id":"fund-jane","debit_account_id":"jmint","credit_account_id":"jane","amount":1000,"currency":"JPY"}`), 201)
}

func TestPacs008Accepted(t *testing.T) {
	e := newEnv(t, Options{})
	ibanBank(e)
	single := readSample(t, "pacs008_single.xml")
	r := e.mustStatus(e.call("POST", "/v1/iso20022/pacs.008", "", single), 200)
	for _, want := range []string{"pacs.002.001.10", "<GrpSts>ACSC</GrpSts>", "<TxSts>ACSC</TxSts>", "<OrgnlUETR>8a562c67-ca16-48ba-b074-65581be6f011</OrgnlUETR>", "<OrgnlMsgId>MSG-0001</OrgnlMsgId>"} {
		if !strings.Contains(string(r.body), want) {
			t.Fatalf("pacs.002 lacks %s:\n%s", want, r.body)
		}
	}
	if e.balance("DE89370400440532013000") != 2000-1234 || e.balance("bob") != 1234 {
		t.Fatal("12.34 EUR did not move exactly 1234 minor units")
	}
	// resend: idempotent through the UETR, still ACSC, posted once
	r = e.mustStatus(e.call("POST", "/v1/iso20022/pacs.008", "", single), 200)
	if !strings.Contains(string(r.body), "<GrpSts>ACSC</GrpSts>") || e.balance("bob") != 1234 {
		t.Fatalf("resend:\n%s", r.body)
	}
	// the same UETR with another amount is a duplicate with different content
	before := e.observe()
	r = e.mustStatus(e.call("POST", "/v1/iso20022/pacs.008", "", strings.Replace(single, "12.34", "12.35", 1)), 200)
	if !strings.Contains(string(r.body), "<Cd>DU05</Cd>") || e.observe() != before {
		t.Fatalf("reused UETR:\n%s", r.body)
	}
	multi := readSample(t, "pacs008_multi.xml")
	r = e.mustStatus(e.call("POST", "/v1/iso20022/pacs.008", "", multi), 200)
	if strings.Count(string(r.body), "<TxSts>ACSC</TxSts>") != 2 || e.balance("jane") != 500 || e.balance("bob") != 1284 {
		t.Fatalf("multi:\n%s", r.body)
	}
}

func TestPacs008Rejected(t *testing.T) {
	e := newEnv(t, Options{})
	ibanBank(e)
	single := readSample(t, "pacs008_single.xml")
	multi := readSample(t, "pacs008_multi.xml")
	for _, tc := range []struct {
		name, doc string
		codes     []string // reason codes that must appear
	}{
		{"insufficient funds", strings.Replace(single, "12.34", "20.01", 1), []string{"AM04"}},
		{"unknown creditor", strings.Replace(single, "<Id>bob</Id>", "<Id>nobody</Id>", 1), []string{"AC01"}},
		{"currency mismatch", strings.Replace(single, `Ccy="EUR"`, `Ccy="USD"`, 1), []string{"AM03"}},
		{"extra precision", strings.Replace(single, "12.34", "12.345", 1), []string{"FF01"}},
		{"JPY with decimals", strings.Replace(multi, ">500<", ">500.5<", 1), []string{"FF01", "NARR"}},
		{"second tx fails, first not posted", strings.Replace(multi, ">0.5<", ">999.99<", 1), []string{"AM04", "NARR"}},
		{"malformed", "<Document><oops></Document>", []string{"FF01"}},
		{"NbOfTxs mismatch", strings.Replace(multi, "<NbOfTxs>2<", "<NbOfTxs>3<", 1), []string{"FF01"}},
		{"duplicate inside message", strings.Replace(multi, "E2E-B", "E2E-A", 1), []string{"DU02", "NARR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.observe()
			r := e.mustStatus(e.call("POST", "/v1/iso20022/pacs.008", "", tc.doc), 200)
			body := string(r.body)
			if !strings.Contains(body, "<GrpSts>RJCT</GrpSts>") || strings.Contains(body, "<TxSts>ACSC</TxSts>") {
				t.Fatalf("not rejected as a whole:\n%s", body)
			}
			for _, c := range tc.codes {
				if !strings.Contains(body, "<Cd>"+c+"</Cd>") {
					t.Fatalf("lacks reason %s:\n%s", c, body)
				}
			}
			if e.observe() != before {
				t.Fatal("rejected pacs.008 posted something")
			}
		})
	}
	if r := e.call("POST", "/v1/iso20022/pacs.008", "", strings.Repeat("<a>", MaxXMLBody/3+10)); r.status != 413 {
		t.Fatalf("oversized body: %d", r.status)
	}
}
