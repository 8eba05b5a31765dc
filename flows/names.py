"""The names people see for drugs, indications, labels and adverse-reaction grades."""

DRUG_NAMES = {
    "romiplostim": "Romiplostim",
    "hetrombopag": "Hetrombopag",
    "lusutrombopag": "Lusutrombopag",
    "luspatercept": "Luspatercept",
}
INDICATION_NAMES = {
    "itp": "ITP",
    "cit": "Chemotherapy-induced thrombocytopenia (CIT)",
    "cld_procedure": "Chronic liver disease, before a procedure",
    "beta_thalassemia": "Beta-thalassaemia",
    "mds": "MDS",
}
REGION_NAMES = {"us": "US label", "eu": "EU label", "jp": "Japan label", "cn": "China label"}
ADVERSE_NAMES = {
    "none": "None",
    "mild": "Grade 1-2",
    "severe": "Grade 3 or more",
    "hypersensitivity": "Grade 3+ hypersensitivity",
}
