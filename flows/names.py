"""The names people see for drugs, indications, labels and adverse-reaction grades."""

from core.luspatercept import SEVERE_GRADE

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
    "mild": f"Grade 1-{SEVERE_GRADE - 1}",
    "severe": f"Grade {SEVERE_GRADE} or more",  # luspatercept's severe grade (RULES.md 4)
    "hypersensitivity": f"Grade {SEVERE_GRADE}+ hypersensitivity",
}
