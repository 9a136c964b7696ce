# ruff: noqa: E501  -- a data table of long strings
"""CONSTRUCTED demo papers: invented titles and abstracts, for `make demo` only (not real papers).

Rendered by scripts/make_demo_corpus.py into real-format EFetch XML and journal feeds under
include/lupus_alerts/data/demo/. DOIs use the Crossref test prefix 10.5555 and PMIDs the 4999xxxx
range, so nothing here can be mistaken for (or resolve to) a real article.

Each entry: key, journal key, title, abstract, MeSH descriptors (a leading * marks a major
topic), keywords, publication type, in PubMed?, feed DOI spelling (None: not in any feed).
"""

from __future__ import annotations

JOURNALS = {
    "LUP": ("Lupus", "Lupus", "1477-0962", "lupus"),
    "LSM": ("Lupus science & medicine", "Lupus Sci Med", "2053-8790", "lsm"),
    "AR": ("Arthritis & rheumatology (Hoboken, N.J.)", "Arthritis Rheumatol", "2326-5205", "ar"),
    "ARD": ("Annals of the rheumatic diseases", "Ann Rheum Dis", "1468-2060", None),
    "RHE": ("Rheumatology (Oxford, England)", "Rheumatology (Oxford)", "1462-0332", None),
    "KI": ("Kidney international", "Kidney Int", "1523-1755", None),
    "JAAD": ("Journal of the American Academy of Dermatology", "J Am Acad Dermatol", "1097-6787", None),
}

SLE = "Lupus Erythematosus, Systemic"
LN = "Lupus Nephritis"
CLE = "Lupus Erythematosus, Cutaneous"
DLE = "Lupus Erythematosus, Discoid"
NP = "Lupus Vasculitis, Central Nervous System"
HUM = "Humans"
FEM = "Female"
RCT = "Randomized Controlled Trial"
JA = "Journal Article"
REV = "Review"
COH = "Observational Study"

# fmt: off
PAPERS = [
    ("ln-voclo", "KI", "Voclosporin added to mycophenolate and low-dose glucocorticoids in proliferative lupus nephritis: three-year renal outcomes",
     "BACKGROUND: Calcineurin inhibition improves early complete renal response in lupus nephritis. METHODS: Patients with biopsy-proven class III, IV or V lupus nephritis continued voclosporin or placebo with mycophenolate mofetil for three years. RESULTS: Complete renal response was maintained in 51% versus 39%; eGFR slopes did not differ and proteinuria fell faster with voclosporin. CONCLUSIONS: Long-term voclosporin was well tolerated and preserved kidney function.",
     ["*" + LN, "Calcineurin Inhibitors", "Mycophenolic Acid", HUM], ["lupus nephritis", "voclosporin", "proteinuria"], RCT, True, None),
    ("ln-biopsy", "KI", "Repeat kidney biopsy after induction therapy predicts renal flares in lupus nephritis",
     "Persistent histologic activity on protocol repeat biopsy after induction therapy was associated with a threefold higher risk of renal flare despite complete proteinuric response. Chronicity index progression predicted a decline in eGFR. Protocol biopsies may guide the duration of maintenance immunosuppression in lupus nephritis.",
     ["*" + LN, "Biopsy", "Kidney", HUM], ["repeat biopsy", "renal flare", "activity index"], COH, True, None),
    ("ln-obinu", "LUP", "Obinutuzumab in refractory lupus nephritis: a multicentre real-world cohort",
     "We describe 42 patients with lupus nephritis refractory to mycophenolate or cyclophosphamide treated with obinutuzumab. At 52 weeks 57% achieved a complete or partial renal response and B-cell depletion was deeper than with rituximab. Infections were the main adverse events.",
     ["*" + LN, "Antibodies, Monoclonal, Humanized", "B-Lymphocytes", HUM], ["obinutuzumab", "lupus nephritis", "B-cell depletion"], COH, True, "https://doi.org/{doi}"),
    ("ln-urine", "LSM", "Urinary CD163 and MCP-1 as non-invasive markers of active lupus nephritis",
     "Urinary soluble CD163 distinguished active from inactive lupus nephritis with an area under the curve of 0.89 and correlated with the histologic activity index. Combining CD163 with MCP-1 improved prediction of renal flare over proteinuria alone.",
     ["*" + LN, "Biomarkers", HUM], ["urinary biomarkers", "CD163", "renal flare"], JA, True, "info:doi/{DOI}"),
    ("ln-peds", "AR", "Childhood-onset lupus nephritis outcomes into adulthood: a 20-year inception cohort",
     "Among 310 patients with childhood-onset SLE, 38% developed lupus nephritis, mostly within two years of diagnosis. End-stage kidney disease occurred in 9% by age 30. Early complete response predicted preserved kidney function in adulthood.",
     ["*" + LN, "*" + SLE, "Child", "Adolescent", HUM], ["childhood-onset SLE", "pediatric lupus", "kidney failure"], COH, True, "doi:{DOI}"),
    ("np-cog", "LUP", "Cognitive dysfunction in systemic lupus erythematosus assessed with a computerized battery over five years",
     "Cognitive impairment affected 27% of patients at baseline and was stable in most over five years. Antiphospholipid antibodies and cerebrovascular events predicted decline. Neuropsychiatric lupus screening with brief computerized testing is feasible in clinic.",
     ["*" + SLE, "Cognitive Dysfunction", "Lupus Vasculitis, Central Nervous System", HUM], ["neuropsychiatric lupus", "cognition", "NPSLE"], COH, True, "{doi}"),
    ("np-mri", "ARD", "Brain MRI white matter hyperintensities and neuropsychiatric events in newly diagnosed SLE",
     "In an inception cohort, white matter hyperintensities on brain MRI at diagnosis were associated with subsequent neuropsychiatric events attributed to SLE, including seizures and cerebrovascular disease, independent of age and hypertension.",
     ["*" + NP, SLE, "Magnetic Resonance Imaging", HUM], ["NPSLE", "MRI", "seizures"], COH, True, None),
    ("np-psych", "RHE", "Psychosis attributed to systemic lupus erythematosus: presentation, treatment and relapse",
     "Lupus psychosis presented early in disease and responded to glucocorticoids with cyclophosphamide or rituximab in most patients; relapse occurred in 14%. Antiribosomal P antibodies were more frequent than in controls.",
     ["*" + SLE, "Psychotic Disorders", HUM], ["neuropsychiatric lupus", "psychosis", "anti-ribosomal P"], JA, True, None),
    ("cle-anifro", "JAAD", "Anifrolumab for refractory cutaneous lupus erythematosus: a case series of 24 patients",
     "Anifrolumab reduced CLASI activity scores by at least 50% in 19 of 24 patients with refractory discoid or subacute cutaneous lupus erythematosus within 12 weeks, including patients without systemic disease. Herpes zoster occurred in two.",
     ["*" + CLE, DLE, "Antibodies, Monoclonal, Humanized", HUM], ["cutaneous lupus", "anifrolumab", "CLASI", "discoid lupus"], JA, True, None),
    ("cle-hcq", "LSM", "Hydroxychloroquine blood levels and cutaneous lupus activity",
     "Low hydroxychloroquine blood concentrations were associated with active cutaneous lupus and with smoking. Adjusting dosing by blood levels improved skin disease in non-adherent patients with discoid lupus.",
     ["*" + CLE, "Hydroxychloroquine", HUM], ["cutaneous lupus", "hydroxychloroquine", "drug levels"], JA, True, "info:doi/{DOI}"),
    ("cle-photo", "JAAD", "Photoprovocation testing in subacute cutaneous lupus erythematosus",
     "Standardised UVA and UVB photoprovocation reproduced skin lesions in 61% of patients with subacute cutaneous lupus erythematosus; positive tests were linked to anti-Ro antibodies and informed photoprotection counselling.",
     ["*" + CLE, "Photosensitivity Disorders", HUM], ["SCLE", "photosensitivity", "anti-Ro"], JA, True, None),
    ("preg-pre", "AR", "Predictors of preeclampsia in pregnant women with systemic lupus erythematosus",
     "In 580 lupus pregnancies, preeclampsia occurred in 11%. Prior lupus nephritis, low complement and antiphospholipid antibodies predicted preeclampsia, whereas hydroxychloroquine and aspirin use were protective. Preconception counselling should target these factors.",
     ["*" + SLE, "Pre-Eclampsia", "Pregnancy", FEM, HUM], ["lupus pregnancy", "preeclampsia", "aspirin"], COH, True, "doi:{DOI}"),
    ("preg-chb", "LUP", "Hydroxychloroquine and recurrence of congenital heart block in anti-Ro positive mothers",
     "Among mothers with a previous child with congenital heart block from neonatal lupus, hydroxychloroquine from 10 weeks of gestation halved the recurrence rate compared with historical controls.",
     ["Lupus Erythematosus, Systemic", "Heart Block", "Pregnancy", FEM, HUM], ["neonatal lupus", "congenital heart block", "anti-Ro"], JA, True, "https://doi.org/{doi}"),
    ("preg-contra", "LSM", "Contraception counselling and use among women with lupus of reproductive age",
     "Only 41% of women with SLE at risk of pregnancy used effective contraception; those with antiphospholipid antibodies were often prescribed estrogen-containing methods. Structured family planning counselling improved appropriate use.",
     ["*" + SLE, "Contraception", FEM, HUM], ["reproductive health", "contraception", "lupus pregnancy"], JA, False, "info:doi/{DOI}"),
    ("aps-doac", "ARD", "Direct oral anticoagulants versus warfarin in antiphospholipid syndrome with lupus",
     "In patients with thrombotic antiphospholipid syndrome secondary to SLE, arterial thrombosis recurred more often on direct oral anticoagulants than on warfarin, particularly with triple antiphospholipid antibody positivity and lupus anticoagulant.",
     ["Antiphospholipid Syndrome", "*" + SLE, "Anticoagulants", "Thrombosis", HUM], ["antiphospholipid syndrome", "thrombosis", "lupus anticoagulant"], RCT, True, None),
    ("aps-score", "RHE", "The adjusted global antiphospholipid syndrome score predicts thrombosis in lupus",
     "A higher adjusted global APS score predicted first thrombosis in a cohort of 1,020 patients with SLE over eight years, outperforming single antibody testing.",
     ["Antiphospholipid Syndrome", "*" + SLE, "Thrombosis", HUM], ["aGAPSS", "antiphospholipid antibodies", "thrombosis"], COH, True, None),
    ("cv-athero", "AR", "Carotid plaque progression and cardiovascular events in systemic lupus erythematosus",
     "Carotid plaque progression on ultrasound predicted myocardial infarction and stroke in SLE independent of traditional risk factors. Cumulative glucocorticoid dose and disease activity accelerated atherosclerosis.",
     ["*" + SLE, "Atherosclerosis", "Carotid Artery Diseases", "Cardiovascular Diseases", HUM], ["cardiovascular risk", "atherosclerosis", "myocardial infarction"], COH, True, "doi:{DOI}"),
    ("cv-myo", "LUP", "Cardiac magnetic resonance detects subclinical myocarditis in active lupus",
     "Cardiac MRI showed myocardial oedema or late gadolinium enhancement in 22% of patients with active SLE without cardiac symptoms, associated with troponin elevation and higher SLEDAI.",
     ["*" + SLE, "Myocarditis", "Magnetic Resonance Imaging", HUM], ["lupus myocarditis", "cardiac MRI", "heart"], JA, True, "https://doi.org/{doi}"),
    ("tx-belim", "ARD", "Belimumab and organ damage accrual in systemic lupus erythematosus: a propensity-matched comparison",
     "Patients receiving belimumab accrued less organ damage over five years than matched patients on standard therapy (SDI increase 0.4 versus 0.8), with lower cumulative glucocorticoid exposure.",
     ["*" + SLE, "Antibodies, Monoclonal, Humanized", HUM], ["belimumab", "damage accrual", "glucocorticoid sparing"], COH, True, None),
    ("tx-cart", "AR", "CD19 CAR T-cell therapy induces drug-free remission in refractory systemic lupus erythematosus",
     "Eight patients with refractory SLE received autologous CD19-directed CAR T cells. All achieved DORIS remission off immunosuppression at six months, autoantibodies disappeared and B cells reconstituted with a naive phenotype. Cytokine release syndrome was mild.",
     ["*" + SLE, "Receptors, Chimeric Antigen", "Immunotherapy, Adoptive", HUM], ["CAR-T", "B cells", "remission", "cell therapy"], JA, True, "doi:{DOI}"),
    ("tx-anifro-ltp", "LSM", "Anifrolumab long-term extension: four-year safety and glucocorticoid tapering",
     "In the long-term extension of the anifrolumab trials, the safety profile over four years was consistent with the parent trials, and sustained glucocorticoid tapering to 7.5 mg/day or less was achieved in most patients with moderate to severe SLE.",
     ["*" + SLE, "Antibodies, Monoclonal, Humanized", "Interferon Type I", HUM], ["anifrolumab", "type I interferon", "glucocorticoid tapering"], RCT, True, "info:doi/{DOI}"),
    ("tx-taper", "RHE", "Glucocorticoid withdrawal in quiescent systemic lupus erythematosus: a randomised trial",
     "Among patients with clinically quiescent SLE on 5 mg prednisone, withdrawal increased the risk of flare within a year (27% versus 7%) without reducing short-term damage. Withdrawal should be individualised.",
     ["*" + SLE, "Glucocorticoids", "Prednisone", HUM], ["glucocorticoids", "flare", "tapering"], RCT, True, None),
    ("tx-hcq-ret", "LUP", "Hydroxychloroquine retinopathy screening with OCT in a lupus clinic",
     "Spectral-domain OCT screening detected hydroxychloroquine retinopathy in 3.1% of patients with lupus treated for more than five years; risk rose with dose above 5 mg/kg and chronic kidney disease.",
     ["*" + SLE, "Hydroxychloroquine", "Retinal Diseases", HUM], ["hydroxychloroquine", "retinopathy", "screening"], JA, True, "{DOI}"),
    ("tx-deucra", "AR", "Deucravacitinib, an oral TYK2 inhibitor, in active systemic lupus erythematosus: phase 2 results",
     "At week 32, SRI-4 response was higher with deucravacitinib 3 mg twice daily than with placebo (58% versus 34%), with improvements in skin and joint disease. Acne and upper respiratory infections were more frequent.",
     ["*" + SLE, "TYK2 Kinase", HUM], ["deucravacitinib", "TYK2", "clinical trial"], RCT, True, None),
    ("epi-inc", "ARD", "Incidence and prevalence of systemic lupus erythematosus by ethnicity: a national registry study",
     "SLE incidence was 4.9 per 100,000 person-years, three times higher in women of African and Asian ancestry. Prevalence increased over two decades while mortality declined, most in younger patients.",
     ["*" + SLE, "Incidence", "Prevalence", "Registries", HUM], ["epidemiology", "incidence", "ethnicity", "mortality"], COH, True, None),
    ("epi-mort", "LSM", "Causes of death in systemic lupus erythematosus over four decades",
     "Standardised mortality ratios fell from 4.6 to 2.1 over four decades. Deaths from active lupus declined, whereas cardiovascular disease and infection became the leading causes of death.",
     ["*" + SLE, "Mortality", "Cause of Death", HUM], ["mortality", "epidemiology", "infection"], COH, True, "info:doi/{DOI}"),
    ("epi-sdoh", "LUP", "Social determinants of health and damage accrual in lupus: a US multicentre cohort",
     "Neighbourhood poverty and food insecurity were associated with faster damage accrual and more emergency admissions in SLE after adjustment for ethnicity and disease activity.",
     ["*" + SLE, "Social Determinants of Health", "Poverty", HUM], ["health disparities", "damage", "social determinants"], COH, False, "https://doi.org/{doi}"),
    ("imm-ifn", "AR", "Type I interferon gene signature stability and flare risk in systemic lupus erythematosus",
     "A high interferon gene signature was stable over two years in most patients and predicted flares, particularly cutaneous and haematological. Interferon-low patients had more renal involvement.",
     ["*" + SLE, "Interferon Type I", "Transcriptome", HUM], ["interferon signature", "flare", "biomarkers"], JA, True, "doi:{DOI}"),
    ("imm-gwas", "ARD", "Genome-wide association study in 12,000 patients identifies new lupus susceptibility loci",
     "A trans-ancestry genome-wide association study identified 16 new susceptibility loci for systemic lupus erythematosus, implicating B-cell signalling and type I interferon pathways, and a polygenic risk score predicting renal involvement.",
     ["*" + SLE, "Genome-Wide Association Study", "Genetic Predisposition to Disease", HUM], ["GWAS", "genetics", "polygenic risk"], JA, True, None),
    ("imm-tfh", "LSM", "Peripheral helper T cells drive extrafollicular B-cell responses in lupus",
     "Single-cell RNA sequencing of blood from patients with SLE showed expansion of PD-1-high CXCR5-negative peripheral helper T cells that correlated with double-negative B cells and disease activity.",
     ["*" + SLE, "T-Lymphocytes, Helper-Inducer", "B-Lymphocytes", HUM], ["T peripheral helper", "B cells", "single-cell"], JA, True, "info:doi/{DOI}"),
    ("heme-itp", "RHE", "Immune thrombocytopenia in systemic lupus erythematosus: treatment patterns and outcomes",
     "Severe thrombocytopenia occurred in 8% of patients with SLE and responded to glucocorticoids with rituximab or thrombopoietin receptor agonists. Thrombocytopenia was associated with neuropsychiatric involvement and mortality.",
     ["*" + SLE, "Thrombocytopenia", "Purpura, Thrombocytopenic, Idiopathic", HUM], ["haematological lupus", "thrombocytopenia", "cytopenia"], JA, True, None),
    ("heme-ahai", "LUP", "Autoimmune haemolytic anaemia as the presenting feature of systemic lupus erythematosus",
     "Warm autoimmune haemolytic anaemia preceded other lupus features in 18 patients, who more often developed lupus nephritis and antiphospholipid antibodies.",
     ["*" + SLE, "Anemia, Hemolytic, Autoimmune", HUM], ["haemolytic anaemia", "haematological lupus"], JA, True, "{doi}"),
    ("lung-ild", "RHE", "Interstitial lung disease and shrinking lung syndrome in systemic lupus erythematosus",
     "High-resolution CT identified interstitial lung disease in 4% and shrinking lung syndrome in 1% of patients with SLE; both reduced diffusing capacity and were associated with anti-Ro antibodies and longer disease duration.",
     ["*" + SLE, "Lung Diseases, Interstitial", HUM], ["lung", "interstitial lung disease", "pulmonary"], JA, True, None),
    ("peds-transition", "LSM", "Transition from paediatric to adult lupus care: loss to follow-up and flares",
     "One in three young people with childhood-onset lupus was lost to follow-up within two years of transfer to adult care; those lost had more flares and emergency admissions. A dedicated transition clinic halved loss to follow-up.",
     ["*" + SLE, "Transition to Adult Care", "Adolescent", HUM], ["childhood-onset SLE", "transition", "adolescents"], JA, True, "info:doi/{DOI}"),
    ("peds-growth", "AR", "Growth and pubertal delay in childhood-onset systemic lupus erythematosus",
     "Children with lupus had reduced final height when cumulative glucocorticoid exposure was high; pubertal delay was common in those with lupus nephritis.",
     ["*" + SLE, "Child", "Growth Disorders", HUM], ["pediatric lupus", "growth", "glucocorticoids"], JA, False, "doi:{DOI}"),
    ("qol-fatigue", "LUP", "A physical activity intervention for fatigue in systemic lupus erythematosus: randomised trial",
     "A 12-week supervised aerobic exercise programme reduced fatigue severity scale scores compared with usual care in patients with SLE, without increasing disease activity.",
     ["*" + SLE, "Fatigue", "Exercise Therapy", HUM], ["fatigue", "quality of life", "exercise"], RCT, True, "https://doi.org/{doi}"),
    ("qol-pro", "LSM", "Patient-reported outcomes and the lupus low disease activity state",
     "Attainment of the lupus low disease activity state was associated with better patient-reported physical function and less pain, but fatigue and depression often persisted.",
     ["*" + SLE, "Patient Reported Outcome Measures", "Quality of Life", HUM], ["LLDAS", "patient-reported outcomes", "quality of life"], JA, True, "info:doi/{DOI}"),
    ("inf-vacc", "ARD", "Herpes zoster vaccination with recombinant vaccine in patients with lupus on immunosuppression",
     "The recombinant zoster vaccine was immunogenic and did not increase flares in 96 patients with SLE on immunosuppressive therapy, supporting vaccination before starting anifrolumab or JAK inhibitors.",
     ["*" + SLE, "Herpes Zoster Vaccine", "Vaccination", HUM], ["infection", "vaccination", "herpes zoster"], JA, True, None),
    ("dil-checkpoint", "JAAD", "Drug-induced lupus associated with immune checkpoint inhibitors",
     "We report 12 cases of drug-induced cutaneous and systemic lupus during immune checkpoint inhibitor therapy, most with subacute cutaneous lupus lesions and anti-Ro antibodies, responding to drug withdrawal and topical therapy.",
     ["Lupus Erythematosus, Systemic", "*" + CLE, "Immune Checkpoint Inhibitors", HUM], ["drug-induced lupus", "immune checkpoint inhibitors"], JA, True, None),
    ("class-eular", "ARD", "Performance of the 2019 EULAR/ACR classification criteria for SLE in early disease",
     "In patients with symptoms for less than a year, the 2019 EULAR/ACR criteria were more sensitive than the 1997 ACR criteria for systemic lupus erythematosus, with similar specificity against mimicking conditions.",
     ["*" + SLE, "Classification", HUM], ["classification criteria", "diagnosis", "early lupus"], JA, True, None),
    ("ln-mouse", "LUP", "Complement C3 deposition in the kidneys of NZB/W lupus-prone mice is reduced by factor B inhibition",
     "In NZB/W F1 mice, oral factor B inhibition reduced glomerular C3 deposition, proteinuria and mortality, supporting alternative pathway blockade in lupus nephritis.",
     [LN, "Complement Factor B", "Mice, Inbred NZB", "Disease Models, Animal"], ["lupus nephritis", "complement", "mouse model"], JA, True, "https://doi.org/{doi}"),
]

# Non-lupus items that appear in the general rheumatology feed: the relevance step must drop them.
AR_NON_LUPUS = [
    ("ra-jak", "Cardiovascular safety of JAK inhibitors in rheumatoid arthritis: a target trial emulation",
     "In patients with rheumatoid arthritis, JAK inhibitors were not associated with more major adverse cardiovascular events than TNF inhibitors after accounting for baseline risk."),
    ("gout-ult", "Treat-to-target urate lowering and gout flares during initiation",
     "A nurse-led treat-to-target strategy achieved serum urate below 360 micromol/L in 88% of patients with gout, with flares concentrated in the first three months."),
    ("psa-il23", "IL-23 inhibition and radiographic progression in psoriatic arthritis",
     "Guselkumab slowed radiographic progression in psoriatic arthritis compared with placebo over two years."),
    ("vulgaris", "Lupus vulgaris of the face mimicking discoid lupus: cutaneous tuberculosis revisited",
     "Three cases of lupus vulgaris, a form of cutaneous tuberculosis, were initially misdiagnosed as discoid lupus; biopsy with mycobacterial culture established the diagnosis."),
]
# fmt: on
