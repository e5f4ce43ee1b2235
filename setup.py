"""uninet_mm: UniNet as an OpenMMLab backbone, with DSM retrofits and architecture search."""
import os
import os.path as osp
import re
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))

#: repository folders shipped inside the package, as OpenMMLab packages ship theirs
MIM_FOLDERS = ('configs', 'tools')


def add_mim_extension():
    """Copy ``configs/`` and ``tools/`` to ``uninet_mm/.mim/`` when a wheel or an sdist is
    built, so that an installed package has them (``uninet_mm.utils.paths`` finds them there).
    Editable installs and ``develop`` need no copy: the package then lives in the clone. The
    copies are build outputs (``.gitignore``), never kept in git; a ``pip install`` straight
    from the source tree builds a wheel first, so it ships them too."""
    if not any(cmd in sys.argv for cmd in ('bdist_wheel', 'sdist', 'build', 'build_py',
                                           'install', 'bdist_egg')):
        return  # metadata, develop, editable: nothing to ship
    mim = osp.join(HERE, 'uninet_mm', '.mim')
    for folder in MIM_FOLDERS:
        src, dst = osp.join(HERE, folder), osp.join(mim, folder)
        if not osp.isdir(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


def mim_package_data():
    """Every file under ``uninet_mm/.mim`` (relative to the package)."""
    pkg = osp.join(HERE, 'uninet_mm')
    files = []
    for root, _, names in os.walk(osp.join(pkg, '.mim')):
        files += [osp.relpath(osp.join(root, n), pkg) for n in names]
    return files


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` (comments dropped)."""
    lines = []
    with open(osp.join(HERE, 'requirements', f'{name}.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def read_version():
    with open(osp.join(HERE, 'uninet_mm', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


add_mim_extension()
setup(
    name='uninet_mm',
    version=read_version(),
    description='UniNet (convolution, transformer and MLP in one searched '
    'network) as a drop-in OpenMMLab backbone, with DSM retrofits and the '
    'architecture search',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10,<3.13',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    include_package_data=True,
    package_data={'uninet_mm': mim_package_data()},
    install_requires=(read_requirements('torch') + read_requirements('mmcv')
                      + read_requirements('runtime')),
    extras_require={
        'tests': read_requirements('tests'),
        'search': read_requirements('search'),
        'build': read_requirements('build'),
    },
    classifiers=[
        'Programming Language :: Python :: 3.11',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
