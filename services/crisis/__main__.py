from services.crisis.app import DEFINITION
from services.plumbing.runner import main

main(DEFINITION)
