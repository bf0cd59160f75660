// Checks UBL 2.1 invoices with phive against the official rule sets that phive's rule packages
// ship: OpenPeppol's BIS Billing 3.0 release (the UBL 2.1 schema, the CEN EN 16931 rules as
// Peppol bundles them and the Peppol rules) and CEN's own newest EN 16931 UBL rules.
//
//   java -cp CLASSES:LIBS/* Validate FILE...
//
// Prints one tab-separated line per finding, for machines:
//   finding<TAB>FILE<TAB>RULE SET<TAB>LEVEL<TAB>RULE ID<TAB>LOCATION<TAB>TEXT
// and one line per file and rule set:
//   result<TAB>FILE<TAB>RULE SET<TAB>valid|invalid<TAB>ERRORS<TAB>WARNINGS
// Exit status: 0 every file passed every rule set (warnings allowed), 1 a file failed, 2 misuse.
import com.helger.diagnostics.error.IError;
import com.helger.diagnostics.error.level.EErrorLevel;
import com.helger.diver.api.coord.DVRCoordinate;
import com.helger.io.resource.FileSystemResource;
import com.helger.phive.api.execute.ValidationExecutionManager;
import com.helger.phive.api.executorset.IValidationExecutorSet;
import com.helger.phive.api.executorset.ValidationExecutorSetRegistry;
import com.helger.phive.api.result.ValidationResult;
import com.helger.phive.api.result.ValidationResultList;
import com.helger.phive.api.validity.IValidityDeterminator;
import com.helger.phive.en16931.EN16931Validation;
import com.helger.phive.peppol.PeppolValidation;
import com.helger.phive.peppol.PeppolValidation2026_05;
import com.helger.phive.xml.source.IValidationSourceXML;
import com.helger.phive.xml.source.ValidationSourceXML;
import java.io.File;
import java.util.List;
import java.util.Locale;

public final class Validate {
  // Pinned rule sets: a newer rule package is a deliberate change of this list and the pom.
  private static final List<DVRCoordinate> RULE_SETS =
      List.of(
          PeppolValidation2026_05.VID_OPENPEPPOL_INVOICE_UBL_V3,
          EN16931Validation.VID_UBL_INVOICE_1316);

  private Validate() {}

  private static String clean(String s) {
    return s == null ? "" : s.replace('\t', ' ').replace('\n', ' ').replace('\r', ' ').strip();
  }

  public static void main(String[] args) {
    if (args.length == 0) {
      System.err.println("usage: Validate FILE...");
      System.exit(2);
    }
    ValidationExecutorSetRegistry<IValidationSourceXML> registry =
        new ValidationExecutorSetRegistry<>();
    PeppolValidation.initStandard(registry);
    EN16931Validation.initEN16931(registry);
    IValidityDeterminator<IValidationSourceXML> validity = IValidityDeterminator.createDefault();

    boolean allValid = true;
    for (String name : args) {
      File file = new File(name);
      if (!file.isFile()) {
        System.err.println("no such file: " + name);
        System.exit(2);
      }
      for (DVRCoordinate id : RULE_SETS) {
        IValidationExecutorSet<IValidationSourceXML> ves = registry.getOfID(id);
        if (ves == null) {
          System.err.println("rule set not in the installed packages: " + id.getAsSingleID());
          System.exit(2);
        }
        ValidationSourceXML source = ValidationSourceXML.create(new FileSystemResource(file));
        ValidationResultList results =
            ValidationExecutionManager.executeValidation(validity, ves, source, Locale.ENGLISH);
        int errors = 0;
        int warnings = 0;
        for (ValidationResult result : results) {
          if (result.getValidity().isSkipped()) {
            // A skipped step (the Schematron after a schema failure) is a failure to check.
            errors++;
            System.out.println(
                String.join(
                    "\t", "finding", name, id.getAsSingleID(), "ERROR", "SKIPPED", "",
                    "not run: " + clean(result.getValidationArtefact().getRuleResourcePath())));
            continue;
          }
          for (IError error : result.getErrorList()) {
            boolean isError = error.getErrorLevel().isGE(EErrorLevel.ERROR);
            if (isError) {
              errors++;
            } else {
              warnings++;
            }
            System.out.println(
                String.join(
                    "\t",
                    "finding",
                    name,
                    id.getAsSingleID(),
                    isError ? "ERROR" : "WARNING",
                    clean(error.getErrorID()),
                    clean(error.getErrorFieldName()),
                    clean(error.getErrorText(Locale.ENGLISH))));
          }
        }
        boolean valid = errors == 0;
        allValid &= valid;
        System.out.println(
            String.join(
                "\t", "result", name, id.getAsSingleID(), valid ? "valid" : "invalid",
                Integer.toString(errors), Integer.toString(warnings)));
      }
    }
    System.exit(allValid ? 0 : 1);
  }
}
