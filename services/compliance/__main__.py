from services.compliance.app import DEFINITION
from services.plumbing.runner import main

main(DEFINITION)
