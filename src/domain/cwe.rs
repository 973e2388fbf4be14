//! Names of common CWE entries. CSAF carries a weakness as an id with its official
//! name, and validators check the pair; weaknesses outside this list are still
//! accepted and shown, and go into CSAF as a note instead.

/// `(id, name)` pairs, by id.
const CATALOGUE: &[(&str, &str)] = &[
    ("CWE-20", "Improper Input Validation"),
    (
        "CWE-22",
        "Improper Limitation of a Pathname to a Restricted Directory ('Path Traversal')",
    ),
    (
        "CWE-77",
        "Improper Neutralization of Special Elements used in a Command ('Command Injection')",
    ),
    (
        "CWE-78",
        "Improper Neutralization of Special Elements used in an OS Command ('OS Command Injection')",
    ),
    (
        "CWE-79",
        "Improper Neutralization of Input During Web Page Generation ('Cross-site Scripting')",
    ),
    (
        "CWE-89",
        "Improper Neutralization of Special Elements used in an SQL Command ('SQL Injection')",
    ),
    ("CWE-94", "Improper Control of Generation of Code ('Code Injection')"),
    (
        "CWE-119",
        "Improper Restriction of Operations within the Bounds of a Memory Buffer",
    ),
    (
        "CWE-120",
        "Buffer Copy without Checking Size of Input ('Classic Buffer Overflow')",
    ),
    ("CWE-125", "Out-of-bounds Read"),
    ("CWE-190", "Integer Overflow or Wraparound"),
    ("CWE-200", "Exposure of Sensitive Information to an Unauthorized Actor"),
    ("CWE-269", "Improper Privilege Management"),
    ("CWE-276", "Incorrect Default Permissions"),
    ("CWE-287", "Improper Authentication"),
    ("CWE-295", "Improper Certificate Validation"),
    ("CWE-306", "Missing Authentication for Critical Function"),
    ("CWE-319", "Cleartext Transmission of Sensitive Information"),
    ("CWE-321", "Use of Hard-coded Cryptographic Key"),
    ("CWE-327", "Use of a Broken or Risky Cryptographic Algorithm"),
    ("CWE-347", "Improper Verification of Cryptographic Signature"),
    ("CWE-352", "Cross-Site Request Forgery (CSRF)"),
    (
        "CWE-362",
        "Concurrent Execution using Shared Resource with Improper Synchronization ('Race Condition')",
    ),
    ("CWE-400", "Uncontrolled Resource Consumption"),
    ("CWE-416", "Use After Free"),
    ("CWE-434", "Unrestricted Upload of File with Dangerous Type"),
    ("CWE-476", "NULL Pointer Dereference"),
    ("CWE-502", "Deserialization of Untrusted Data"),
    ("CWE-506", "Embedded Malicious Code"),
    ("CWE-522", "Insufficiently Protected Credentials"),
    ("CWE-611", "Improper Restriction of XML External Entity Reference"),
    ("CWE-787", "Out-of-bounds Write"),
    ("CWE-798", "Use of Hard-coded Credentials"),
    ("CWE-862", "Missing Authorization"),
    ("CWE-863", "Incorrect Authorization"),
    ("CWE-912", "Hidden Functionality"),
    ("CWE-918", "Server-Side Request Forgery (SSRF)"),
];

/// The official name of `id` (`CWE-798`), when it is in the catalogue.
pub fn name(id: &str) -> Option<&'static str> {
    CATALOGUE.iter().find(|(known, _)| *known == id).map(|(_, name)| *name)
}

/// Every catalogued id, for tests that check the names against a validator.
pub fn ids() -> impl Iterator<Item = &'static str> {
    CATALOGUE.iter().map(|(id, _)| *id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lookups() {
        assert_eq!(super::name("CWE-798"), Some("Use of Hard-coded Credentials"));
        assert_eq!(super::name("CWE-1"), None);
        assert!(super::ids().all(|id| id.starts_with("CWE-")));
    }
}
