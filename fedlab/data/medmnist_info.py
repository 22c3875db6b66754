"""The official MedMNIST v2 files (28×28): names, URLs, MD5 sums, label names, split
sizes, licences and citations, as listed by the ``medmnist`` package 3.0.2
(``medmnist/info.py``, Zenodo record 10519652)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DATASETS", "DatasetInfo", "MEDMNIST_CITATION", "ZENODO"]

ZENODO = "https://zenodo.org/records/10519652/files"
MEDMNIST_CITATION = (
    "J. Yang, R. Shi, D. Wei, Z. Liu, L. Zhao, B. Ke, H. Pfister, B. Ni. MedMNIST v2 - A "
    "large-scale lightweight benchmark for 2D and 3D biomedical image classification. "
    "Scientific Data 10, 41 (2023)."
)


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one official MedMNIST v2 file (28×28)."""

    name: str
    filename: str
    url: str
    md5: str
    task: Literal["binary-class", "multi-class", "ordinal-regression"]
    n_channels: int
    classes: tuple[str, ...]
    n_train: int
    n_val: int
    n_test: int
    license: str
    citation: str
    description: str


def _info(name: str, md5: str, task: str, n_channels: int, classes: tuple[str, ...],
          sizes: tuple[int, int, int], source: str, description: str,
          license: str = "CC BY 4.0") -> DatasetInfo:
    return DatasetInfo(
        name=name, filename=f"{name}.npz", url=f"{ZENODO}/{name}.npz?download=1", md5=md5,
        task=task, n_channels=n_channels, classes=classes, n_train=sizes[0],
        n_val=sizes[1], n_test=sizes[2], license=license,
        citation=f"{MEDMNIST_CITATION}\nSource data: {source}", description=description,
    )


_ORGANS = ("bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right",
           "liver", "lung-left", "lung-right", "pancreas", "spleen")
_KERMANY = ("D. S. Kermany et al. Identifying medical diagnoses and treatable diseases by "
            "image-based deep learning. Cell 172(5), 1122-1131 (2018).")
_LITS = ("P. Bilic et al. The Liver Tumor Segmentation Benchmark (LiTS). Medical Image "
         "Analysis 84, 102680 (2023); X. Xu et al. Efficient multiple organ localization in "
         "CT image using 3D region proposal network. IEEE TMI 38(8), 1885-1898 (2019).")


def _organ(view: str, md5: str, sizes: tuple[int, int, int]) -> DatasetInfo:
    return _info(f"organ{view[0]}mnist", md5, "multi-class", 1, _ORGANS, sizes, _LITS,
                 f"Abdominal CT (LiTS), {view} slices through 11 organ bounding boxes.")


DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (
    _info("pneumoniamnist", "28209eda62fecd6e6a2d98b1501bb15f", "binary-class", 1,
          ("normal", "pneumonia"), (4708, 524, 624), _KERMANY,
          "Paediatric chest X-rays, pneumonia versus normal."),
    _info("breastmnist", "750601b1f35ba3300ea97c75c52ff8f6", "binary-class", 1,
          ("malignant", "normal, benign"), (546, 78, 156),
          "W. Al-Dhabyani et al. Dataset of breast ultrasound images. Data in Brief 28, "
          "104863 (2020).",
          "Breast ultrasound; malignant (0) versus normal or benign (1)."),
    _info("retinamnist", "bd4c0672f1bba3e3a89f0e4e876791e4", "ordinal-regression", 3,
          ("0", "1", "2", "3", "4"), (1080, 120, 400),
          "R. Liu et al. DeepDRiD: Diabetic Retinopathy - Grading and Image Quality "
          "Estimation Challenge. Patterns 3(6), 100512 (2022).",
          "Retinal fundus photographs, diabetic retinopathy grade 0-4 (ordinal)."),
    _info("bloodmnist", "7053d0359d879ad8a5505303e11de1dc", "multi-class", 3,
          ("basophil", "eosinophil", "erythroblast",
           "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
           "lymphocyte", "monocyte", "neutrophil", "platelet"), (11959, 1712, 3421),
          "A. Acevedo et al. A dataset of microscopic peripheral blood cell images for "
          "development of automatic recognition systems. Data in Brief 30, 105474 (2020).",
          "Microscopy of normal peripheral blood cells, 8 cell types."),
    _info("pathmnist", "a8b06965200029087d5bd730944a56c1", "multi-class", 3,
          ("adipose", "background", "debris", "lymphocytes", "mucus", "smooth muscle",
           "normal colon mucosa", "cancer-associated stroma",
           "colorectal adenocarcinoma epithelium"), (89996, 10004, 7180),
          "J. N. Kather et al. Predicting survival from colorectal cancer histology slides "
          "using deep learning: a retrospective multicenter study. PLOS Medicine 16(1), "
          "e1002730 (2019).",
          "Colorectal cancer histology (H&E) patches, 9 tissue types; test set from "
          "another clinical centre."),
    _info("dermamnist", "0744692d530f8e62ec473284d019b0c7", "multi-class", 3,
          ("actinic keratoses and intraepithelial carcinoma", "basal cell carcinoma",
           "benign keratosis-like lesions", "dermatofibroma", "melanoma",
           "melanocytic nevi", "vascular lesions"), (7007, 1003, 2005),
          "P. Tschandl, C. Rosendahl, H. Kittler. The HAM10000 dataset, a large collection "
          "of multi-source dermatoscopic images of common pigmented skin lesions. "
          "Scientific Data 5, 180161 (2018).",
          "Dermatoscopic images of pigmented skin lesions, 7 diagnoses. Non-commercial "
          "use only.", license="CC BY-NC 4.0"),
    _info("octmnist", "c68d92d5b585d8d81f7112f81e2d0842", "multi-class", 1,
          ("choroidal neovascularization", "diabetic macular edema", "drusen", "normal"),
          (97477, 10832, 1000), _KERMANY,
          "Retinal optical coherence tomography, 4 diagnoses."),
    _info("tissuemnist", "ebe78ee8b05294063de985d821c1c34b", "multi-class", 1,
          ("Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
           "Glomerular endothelial cells", "Interstitial endothelial cells", "Leukocytes",
           "Podocytes", "Proximal Tubule Segments", "Thick Ascending Limb"),
          (165466, 23640, 47280),
          "V. Ljosa, K. L. Sokolnicki, A. E. Carpenter. Annotated high-throughput "
          "microscopy image sets for validation. Nature Methods 9(7), 637 (2012) "
          "(BBBC051).",
          "Human kidney cortex cells (microscopy, max projection), 8 cell types."),
    _organ("axial", "68e3f8846a6bd62f0c9bf841c0d9eacc", (34561, 6491, 17778)),
    _organ("coronal", "b9ceb9546e10131b32923c5bbeaea2b1", (12975, 2392, 8216)),
    _organ("sagittal", "9ab87b696fb54e2a387ebe992d6ed5f1", (13932, 2452, 8827)),
)}
