"""uninet_mm: UniNet as an OpenMMLab backbone, with DSM retrofits and architecture search."""
import os.path as osp
import re

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


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
